"""Numbered equations in an expander: how a lab page shows the math its engine's comments cite by number."""

from __future__ import annotations

import streamlit as st


def equations_expander(title: str, lines: list[str], caption: str) -> None:
    """Each of `lines` as one st.latex row, in order, then a caption that says what the symbols are."""
    with st.expander(title):
        for line in lines:
            st.latex(line)
        st.caption(caption)
