"""The shipped diffusion files tell the truth about each other: the default guidance is the one the shipped model's
own measured sweep suggests, and the player's kept recording was drawn from these weights with the page's first settings."""

from engine.core.checkpoints import read_card
from engine.ddpm.checkpoint import SHIPPED_CHECKPOINT, load_model
from engine.ddpm.quality import CLOSE_TO_REAL, read_sweep, suggested_guidance
from engine.ddpm.recording import FIRST_SETTINGS, SHIPPED_RECORDING, load_recording
from engine.ddpm.sample import DEFAULT_GUIDANCE


def test_the_default_guidance_is_what_the_shipped_models_recorded_sweep_suggests():
    card = read_card(SHIPPED_CHECKPOINT)
    rows, fields = read_sweep(card)
    assert fields["command"].startswith("python -m engine.ddpm sweep") and "--record" in fields["command"]
    assert suggested_guidance(rows) == DEFAULT_GUIDANCE
    [default] = [row for row in rows if row.guidance == DEFAULT_GUIDANCE]
    assert default.recognised >= 0.95 and default.distance_ratio <= CLOSE_TO_REAL


def test_the_kept_recording_is_of_the_shipped_weights_with_the_pages_first_settings():
    model, schedule, card = load_model(SHIPPED_CHECKPOINT)
    recording = load_recording(SHIPPED_RECORDING, card["weights_sha256"])
    assert recording is not None, "make it again with `python -m engine.ddpm record`"
    assert recording.settings == FIRST_SETTINGS.resolved(model.config, schedule.timesteps)
