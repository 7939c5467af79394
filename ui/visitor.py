"""Who is visiting: a random token kept in the page's address (`?visitor=...`), never a name.

A reload, a second tab with the same address, or a reconnect keeps the token, so the visitor finds
their runs and their running or waiting job again. The token is made with `secrets`, so it cannot
be guessed; whoever has the address is that visitor, as with any private link. It is checked
before use: an address with a malformed token gets a fresh one.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import streamlit as st

from engine.core import settings

PARAM = "visitor"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{22,64}")


def visitor_token() -> str:
    """This visitor's token, made on their first visit and kept in the address from then on."""
    token = st.session_state.get("visitor_token")
    if token is None:
        asked = st.query_params.get(PARAM, "")
        token = asked if _TOKEN.fullmatch(asked) else secrets.token_urlsafe(16)
        st.session_state.visitor_token = token
    if st.query_params.get(PARAM) != token:
        st.query_params[PARAM] = token  # page navigation drops the address's parameters: put it back
    return token



def shown_path(path) -> str:
    """A server path as a visitor may see it: in public mode only its last part (the server's folders are its own)."""
    return Path(path).name if settings.public_mode() else str(path)
