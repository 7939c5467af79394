"""A lab's settings in its address, so a teacher can send a link that opens the lab as they set it.

Widgets are bound to query parameters by Streamlit (`bind="query-params"`, the widget's key is the
parameter's name): `?gpt_n_layer=2` opens the GPT lab with two layers, and moving a setting updates
the address. Streamlit ignores a value a widget cannot take and shows the widget's default; a value
the widget takes but the lab's config refuses (`?gpt_n_layer=0`) is put back to the default here.
Either way a note says so, instead of leaving the person to wonder or opening on an error. `share_link`
gives the page's address with its settings and without the visitor's own token.

Only widgets whose options are their own labels are bound: Streamlit writes a radio's or a select
box's formatted label into the address, and a preset's long label makes a brittle link. The
"Start from" presets only fill in the settings, which are bound themselves.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import streamlit as st

from engine.core.config import accepts
from ui.visitor import PARAM as VISITOR


def bound(key: str, field: tuple[type, str] | None = None) -> dict[str, Any]:
    """Keyword arguments that bind a widget to the address: `st.number_input(label, **bound("gpt_n_layer"))`.

    `field` (a config class and a field name) lets the config judge the address's value before the widget
    sees it: a number the widget would take but the config refuses (`?gpt_n_layer=0`) is dropped, so the
    setting keeps its default and the note says why, instead of the page opening on an error. Streamlit seeds a
    widget from the address on a session's first run whatever the code says, so `address_notes` reruns the page
    once, and this puts the default back.
    """
    checked = st.session_state.setdefault("address_checked", set())
    refused = st.session_state.setdefault("address_refused", {})
    if key in refused:  # the run after the first: code may now set the widget's value, which the address seeded on the first
        st.session_state[key] = refused.pop(key)
    elif key not in checked:  # only what the address asked for when the page opened; later changes are the person's
        checked.add(key)
        asked = st.query_params.get(key)
        if asked is not None:
            st.session_state.setdefault("address_asked", {})[key] = asked
            if field is not None and st.session_state.get(key) is not None and not accepts(*field, asked):
                refused[key] = st.session_state[key]  # the page's default, set before its widget is drawn
    keys = st.session_state.setdefault("address_keys", {}).setdefault(key.split("_", 1)[0], [])
    if key not in keys:
        keys.append(key)
    return {"key": key, "bind": "query-params"}


def same_value(asked: str, value: Any) -> bool:
    """Whether the address's text is the value the widget took (so it was not refused)."""
    if isinstance(value, bool):
        return asked.strip().lower() == str(value).lower()
    if isinstance(value, (int, float)):
        try:
            return float(asked) == float(value)
        except ValueError:
            return False
    if value is None:
        return asked == ""
    return asked == str(value)


def address_notes(prefix: str) -> None:
    """One note for the settings of this page that the address asked for and could not have."""
    if any(key.startswith(f"{prefix}_") for key in st.session_state.get("address_refused", {})):
        st.rerun()  # before anything computes with the refused values: the next run puts the defaults back
    asked = st.session_state.get("address_asked", {})
    refused = [(key, text) for key, text in asked.items() if key.startswith(f"{prefix}_") and key in st.session_state
               and not same_value(text, st.session_state[key])]
    for key, text in refused:
        del asked[key]
    if refused:
        listed = "; ".join(f"{key.removeprefix(prefix + '_')}={text!r} (shows {st.session_state[key]!r})" for key, text in refused)
        st.caption(f":material/link_off: The address asked for settings this lab cannot take, so they show their defaults: {listed}.")


def share_link(prefix: str) -> str:
    """This page's address with its bound settings as they are now, and without the visitor's token."""
    url = st.context.url or ""
    base = url.split("?", 1)[0]
    keys = st.session_state.get("address_keys", {}).get(prefix, [])
    values = {key: st.session_state[key] for key in keys if key in st.session_state and key != VISITOR}
    text = {key: ("" if value is None else str(value).lower() if isinstance(value, bool) else str(value)) for key, value in values.items()}
    return f"{base}?{urlencode(text)}" if text else base


def share_box(prefix: str) -> None:
    """A link to these settings, with a copy button (st.code has one)."""
    with st.expander("Share these settings", icon=":material/link:"):
        st.caption("Anyone who opens this link sees this lab with the settings as they are now (not your runs: those stay yours).")
        st.code(share_link(prefix), language=None, wrap_lines=True)
