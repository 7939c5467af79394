"""One way to tell a person something went wrong."""

import streamlit as st

from engine.core.errors import LabError


def show_error(error: BaseException | str) -> None:
    """A LabError's message as it is; anything else is a bug, said plainly without a traceback."""
    if isinstance(error, str) or isinstance(error, LabError):
        st.error(str(error), icon=":material/error:")
    else:
        st.error(f"Something went wrong inside the lab ({type(error).__name__}: {error}). Nothing you had was lost.", icon=":material/bug_report:")
