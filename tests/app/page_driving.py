"""What the page tests do to a page and read from it, shared by their modules."""

from engine.core.jobs import board
from tests.texts import rhymes


def texts(at, kind):
    """Every element of one kind (error, caption, markdown...) as one string to search."""
    return " ".join(str(element.value) for element in getattr(at, kind))


def paste_tiny(at, **settings):
    """The GPT page on its tiny preset, with `settings` changed and the rhymes pasted as the text to train on."""
    at.radio(key="gpt_preset").set_value("tiny").run()
    for name, value in settings.items():
        at.number_input(key=f"gpt_{name}").set_value(value)
    at.radio(key="gpt_source").set_value("paste").run()
    return at.text_area(key="gpt_text").set_value(rhymes()).run()


def wait_for_job(at, prefix):
    """AppTest does not tick fragments: wait for the job's thread, then rerun the page once."""
    job = board.get(at.session_state[f"{prefix}_job_id"])
    job.wait(120)
    at.run()
    return job
