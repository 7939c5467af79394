"""Figures for the transformer page, all drawn from a traced forward pass (engine.gpt.inspect.Trace).

The flow diagram, a stage's numbers, attention heatmaps, the residual stream's change norms, the
logit lens, the next-token probability bars, and annotated matrices for the toy model. Nothing here
computes a model's numbers: each figure slices the trace it is given.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from engine.gpt.inspect import AXES, Numbers, Stage, Trace, stages
from ui.equations import equations_expander
from ui.figures import COLORS

SIGNED = "RdBu_r"  # blue below zero, red above, white at zero
WEIGHTS = "Blues"  # for attention weights and probabilities, 0 to 1
BOX_FILL = {"embed": "#eeeeee", "attention": "#dde7f6", "mlp": "#dcefe2", "unembed": "#eeeeee", "softmax": "#eeeeee"}
SELECTED_FILL = "#ffd9a8"
INK = "#262730"  # Streamlit's text colour; its plotly theme would draw annotations in light grey


def shown(token: str) -> str:
    """A token as it can be read on an axis: a newline is ⏎, a space ␣."""
    return token.replace("\n", "⏎").replace(" ", "␣").replace("\t", "⇥") if len(token) == 1 else token


def position_label(trace: Trace, position: int) -> str:
    return f"{position} '{shown(trace.tokens[position])}'"


def _label_px(labels, size: int = 11) -> int:
    """About how wide the longest of `labels` is drawn, in pixels (a generous 0.62 em per character)."""
    return int(max((len(str(label)) for label in labels), default=0) * 0.62 * size) + 1


def fixed_margins(figure: go.Figure, left: int, bottom: int, top: int, right: int = 10) -> go.Figure:
    """Margins set here rather than measured by plotly's automargin (on by default, and in Streamlit's theme).

    To fit the labels it measures, automargin draws a figure, widens the margins and draws it again: on
    this page that was 0.7 s of the 2.4 s the browser took to redraw for a new 64-character prompt.
    So each figure sizes its margins from its own labels, with _label_px.
    """
    axes = [name for name in figure.layout.to_plotly_json() if name.startswith(("xaxis", "yaxis"))]
    figure.update_layout({name: dict(automargin=False) for name in axes}, margin=dict(l=left, r=right, t=top, b=bottom))
    return figure


# room for an axis title beside its tick labels: the title's line and its standoff from the labels
AXIS_TITLE_PX = 32
TITLE_STANDOFF = 8
LABELLED = 64  # up to this many positions, an axis names each one by its token; beyond, every few by number


def _tick_positions(T: int) -> list[int]:
    return list(range(T)) if T <= LABELLED else list(range(0, T, -(-T // 32)))


def _token_labels(trace: Trace) -> tuple[list[int], list[str], int]:
    """The positions to label on an axis over the prompt, their labels (each token's text, or for a long
    prompt every few positions' numbers) and the labels' font size."""
    T = trace.length
    ticks = _tick_positions(T)
    text = [shown(trace.tokens[i]) for i in ticks] if T <= LABELLED else [str(i) for i in ticks]
    return ticks, text, 9 if T > 40 else 11


def axis_text(figure: go.Figure, positions: list, text: list[str], size: int, side: str = "bottom", subplot: int = 1) -> None:
    """Label a heatmap's x axis (side "bottom") or y axis ("left") with text drawn beside it, in place of tick labels.

    Plotly measures each tick label in the page it is drawn in, and on this long page every measurement
    costs a layout of the whole page: a 64-character prompt's labels took several hundred milliseconds.
    Text in a scatter trace is placed without measuring. It sits on a hidden axis laid over the
    subplot's other one, spanning it from 0 to 1, so that it can stand just outside the plotting area.
    `positions` are the values along the labelled axis (categories, for a category axis).
    """
    main, spare = ("" if subplot == 1 else str(subplot)), str(50 + subplot)
    label = dict(mode="text", text=text, textfont=dict(size=size, color=INK), cliponaxis=False, hoverinfo="skip", showlegend=False)
    if side == "bottom":
        figure.layout[f"yaxis{spare}"] = dict(overlaying=f"y{main}", anchor=f"x{main}", range=[0, 1], visible=False, fixedrange=True)
        figure.add_trace(go.Scatter(x=positions, y=[0] * len(positions), xaxis=f"x{main}", yaxis=f"y{spare}", textposition="bottom center", **label))
        figure.layout[f"xaxis{main}"].update(showticklabels=False, showgrid=False, ticks="")
    else:
        figure.layout[f"xaxis{spare}"] = dict(overlaying=f"x{main}", anchor=f"y{main}", range=[0, 1], visible=False, fixedrange=True)
        figure.add_trace(go.Scatter(x=[0] * len(positions), y=positions, xaxis=f"x{spare}", yaxis=f"y{main}", textposition="middle left", **label))
        figure.layout[f"yaxis{main}"].update(showticklabels=False, showgrid=False, ticks="")


def token_axis_text(figure: go.Figure, trace: Trace, subplot: int = 1) -> int:
    """axis_text under an x axis over the prompt's positions; returns the labels' font size."""
    ticks, text, size = _token_labels(trace)
    axis_text(figure, ticks, text, size, "bottom", subplot)
    return size


def show_computation() -> None:
    """The forward pass as equations, numbered like engine.gpt.inspect's docstring."""
    equations_expander("The computation, step by step", [
        r"x_i = W_E[\text{token}_i] + W_P[i] \qquad (1)",
        r"q_i = W_Q\,\mathrm{LN}_1(x_i),\quad k_i = W_K\,\mathrm{LN}_1(x_i),\quad v_i = W_V\,\mathrm{LN}_1(x_i)"
        r" \quad \text{(split into heads)} \qquad (2)",
        r"A_h[i, j] = \operatorname*{softmax}_{j \le i}\left(\frac{q_i \cdot k_j}{\sqrt{d_\text{head}}}\right) \qquad (3)",
        r"\text{head}_h(i) = W_O^{(h)} \textstyle\sum_j A_h[i, j]\, v_j \qquad (4) \qquad\qquad"
        r" x_i \leftarrow x_i + \textstyle\sum_h \text{head}_h(i) \qquad (5)",
        r"x_i \leftarrow x_i + W_\text{down}\,\mathrm{GELU}\!\left(W_\text{up}\,\mathrm{LN}_2(x_i)\right) \qquad (6)",
        r"\text{logits}_i = W_E\,\mathrm{LN}_f(x_i) \qquad (7) \qquad\qquad p_i = \mathrm{softmax}(\text{logits}_i / \tau) \qquad (8)",
    ], "i and j are positions in the prompt. In (2) and (4) the heads' query, key and value dimensions sit side by side; "
       "W_O^(h) is the slice of the attention's output matrix that reads head h, so (4) is exactly what head h adds to the "
       "stream. The output layer reuses the token embeddings W_E (weight tying). (7) applied after each layer is the logit "
       "lens; τ in (8) is the temperature. LN is a LayerNorm with its learned gain.")


def describe_toy(toy) -> str:
    """One line on the toy (an engine.gpt.toy.ToyResult): how it was trained, and on what."""
    return (f"Trained just now in {toy.seconds:.1f} s ({toy.steps} steps of AdamW on all of its sentences at once) to a loss of "
            f"{toy.losses[-1]:.3f} nats per word; {toy.parameters} parameters. Its sentences: "
            + " · ".join(f"*{s}*" for s in toy.config.sentences) + ". Try a prompt that ends in the middle of one.")


def describe_checkpoint(model, card: dict) -> str:
    """One line on a GPT checkpoint, from its card."""
    metrics = card.get("metrics") or {}
    loss = metrics.get("best_val_loss")
    trained = f"trained {metrics['iter']:,} iterations" if isinstance(metrics.get("iter"), int) else "trained"
    return (f"{model.get_num_params(non_embedding=False):,} parameters; {trained} on {(card.get('data') or {}).get('name', 'unknown text')}"
            + (f" to a validation loss of {loss:.3f} nats per character" if isinstance(loss, (int, float)) else "")
            + f"; reads at most {model.config.block_size} characters.")


# The flow diagram: the residual stream left to right, each layer's attention and MLP above it.


def _stage_place(stage: Stage, n_layer: int) -> tuple[float, float]:
    """Centre of a stage in the diagram's coordinates: the stream runs along y = 0, the blocks sit at y = 1."""
    if stage.kind == "embed":
        return 0.0, 0.0
    if stage.kind in ("unembed", "softmax"):
        return 2 * n_layer + (1.5 if stage.kind == "unembed" else 2.7), 0.0
    x = 1 + 2 * stage.layer + (0 if stage.kind.startswith("attention") else 1)
    return (x, 1.0) if stage.kind in ("attention", "mlp") else (x + 0.3, 0.0)


class _Sketch:
    """What the flow diagram draws, collected as plain values and handed to plotly at once: shapes as dicts
    (plotly's add_shape validates each call, ~100x slower), words as one scatter trace of text and the
    arrowheads as one of markers (plotly measures an annotation's text in the page before placing it,
    which on this page is slow: see axis_text)."""

    GREY = "#888888"

    def __init__(self):
        self.shapes: list[dict] = []
        self.words: list[tuple] = []  # (x, y, text, size)
        self.heads: list[tuple] = []  # (x, y, marker symbol)

    def line(self, x0, y0, x1, y1, width: float = 2, **style) -> None:
        self.shapes.append(dict(type="line", x0=x0, x1=x1, y0=y0, y1=y1, line=dict(color=self.GREY, width=width), **style))

    def arrow(self, x, y, from_x, from_y) -> None:
        self.line(from_x, from_y, x, y)
        self.heads.append((x, y, "triangle-right" if x != from_x else "triangle-down"))


def _flow_words(trace: Trace) -> dict[str, str]:
    """Each kind of stage's box text, with the model's sizes."""
    C, H, hs, M, V = trace.n_embd, trace.n_head, trace.d_head, trace.mlp_width, trace.vocab_size
    return {
        "embed": f"<b>Embed</b><br>token + position<br>{V} {unit_of(trace)}s → {C}",
        "attention": f"<b>Attention</b><br>{H} head{'s' if H > 1 else ''} × {hs}",
        "mlp": f"<b>MLP</b><br>{C} → {M} → {C}",
        "unembed": f"<b>Unembed</b><br>ln_f, Wᴇᵀ<br>{C} → {V}",
        "softmax": f"<b>Softmax</b><br>{V} probabilities",
    }


def _draw_stream(sketch: _Sketch, L: int, C: int) -> None:
    """The residual stream, a thick line from the embedding to the unembedding, and the arrows to the end."""
    end = 2 * L + 1.5 - 0.45
    sketch.line(0.45, 0, end, 0, width=6, layer="below")
    sketch.arrow(end + 0.04, 0, end - 0.3, 0)
    sketch.arrow(2 * L + 2.1, 0, 2 * L + 1.95, 0)
    # Nothing here depends on the prompt, so a new prompt leaves the diagram as it is (Streamlit redraws a chart only when it changes).
    sketch.words.append(((0.45 + end) / 2, -0.42, f"the residual stream: {C} numbers for each position of the prompt", 13))


def _draw_stages(sketch: _Sketch, trace: Trace, selected: str | None) -> list[tuple[float, float, Stage]]:
    """A box for each stage but the adds (drawn as markers by _add_markers); returns every stage with its place."""
    L, text, placed = trace.n_layer, _flow_words(trace), []
    for stage in stages(L):
        x, y = _stage_place(stage, L)
        placed.append((x, y, stage))
        if stage.kind.endswith("_add"):
            continue
        is_selected, width = stage.key == selected, 0.84 if stage.kind in ("attention", "mlp") else 0.9
        sketch.shapes.append(dict(type="rect", x0=x - width / 2, x1=x + width / 2, y0=y - 0.32, y1=y + 0.32, layer="below",
                                  fillcolor=SELECTED_FILL if is_selected else BOX_FILL[stage.kind],
                                  line=dict(color="#e07b00" if is_selected else "#7f7f7f", width=3 if is_selected else 1)))
        sketch.words.append((x, y, text[stage.kind], 12))
        if stage.kind in ("attention", "mlp"):  # read from the stream on the left, write back through ⊕ on the right
            sketch.line(x - 0.3, 0, x - 0.3, y - 0.32, layer="below")
            sketch.arrow(x + 0.3, 0.09, x + 0.3, y - 0.32)
    for layer in range(L):
        left, right = 1 + 2 * layer - 0.45, 2 + 2 * layer + 0.45
        sketch.shapes.append(dict(type="line", x0=left, x1=right, y0=1.42, y1=1.42, line=dict(color="#bbbbbb", width=1)))
        sketch.words.append(((left + right) / 2, 1.55, f"layer {layer + 1}", 13))
    return placed


def _add_markers(placed: list[tuple[float, float, Stage]], selected: str | None) -> go.Scatter:
    """The adds back into the stream, as ⊕ markers."""
    adds = [(x, y, stage.key) for x, y, stage in placed if "_add" in stage.key]
    return go.Scatter(
        x=[x for x, _, _ in adds], y=[y for _, y, _ in adds], mode="markers+text", text=["+"] * len(adds), textfont=dict(size=16, color=INK),
        marker=dict(size=24, color=[SELECTED_FILL if key == selected else "white" for _, _, key in adds],
                    line=dict(color=["#e07b00" if key == selected else "#7f7f7f" for _, _, key in adds], width=2)),
        hoverinfo="skip", showlegend=False,
    )


def _click_targets(placed: list[tuple[float, float, Stage]]) -> go.Scatter:
    """One invisible marker per stage, carrying its key for on_select."""
    return go.Scatter(
        x=[x for x, _, _ in placed], y=[y for _, y, _ in placed], mode="markers", customdata=[stage.key for _, _, stage in placed],
        hovertext=[f"{stage.label}: click to see its numbers" for _, _, stage in placed], hoverinfo="text",
        marker=dict(size=46, symbol="square", color="rgba(0,0,0,0)"), showlegend=False,
        selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1)),
    )


def flow_diagram(trace: Trace, selected: str | None = None, block_size: int | None = None) -> go.Figure:
    """embed -> (attention -> add -> MLP -> add) x layers -> unembed -> softmax, with the model's sizes.

    Each stage carries its key as customdata, so a click on it can select it (st.plotly_chart's on_select).
    """
    L, C, H, hs, M, V = trace.n_layer, trace.n_embd, trace.n_head, trace.d_head, trace.mlp_width, trace.vocab_size
    sketch = _Sketch()
    _draw_stream(sketch, L, C)
    placed = _draw_stages(sketch, trace, selected)
    words, heads = sketch.words, sketch.heads
    figure = go.Figure(layout=dict(shapes=sketch.shapes))
    figure.add_trace(go.Scatter(x=[w[0] for w in words], y=[w[1] for w in words], text=[w[2] for w in words], mode="text",
                                textfont=dict(size=[w[3] for w in words], color=INK), cliponaxis=False, hoverinfo="skip", showlegend=False))
    figure.add_trace(go.Scatter(x=[h[0] for h in heads], y=[h[1] for h in heads], mode="markers", hoverinfo="skip", showlegend=False,
                                marker=dict(symbol=[h[2] for h in heads], size=10, color=_Sketch.GREY)))
    figure.add_trace(_add_markers(placed, selected))
    figure.add_trace(_click_targets(placed))
    context = f", context up to {block_size} {unit_of(trace)}s" if block_size else ""
    figure.update_layout(
        title=f"{L} layer{'s' if L > 1 else ''}, d_model {C}, {H} head{'s' if H > 1 else ''} of {hs}, MLP {M} wide, vocabulary {V}{context}",
        height=320, dragmode=False, clickmode="event+select", plot_bgcolor="white",
        xaxis=dict(visible=False, range=[-0.55, 2 * L + 3.25], fixedrange=True),
        yaxis=dict(visible=False, range=[-0.6, 1.7], fixedrange=True),
    )
    return fixed_margins(figure, left=10, bottom=10, top=50)


# A stage's numbers.


def stage_figure(trace: Trace, numbers: list[Numbers], position: int, title: str) -> go.Figure:
    """One stage's vectors at one position, as strips of colour: one row per vector, vectors of a kind together,
    each kind in a panel of its own (laid out here: plotly's make_subplots takes longer than the rest of the figure)."""
    groups: list[list[Numbers]] = []
    for entry in numbers:
        if groups and groups[-1][0].axis == entry.axis and groups[-1][0].values.shape == entry.values.shape:
            groups[-1].append(entry)
        else:
            groups.append([entry])
    heights = [34 * len(group) + 10 for group in groups]  # pixels per panel
    gap, margin = 78, 60  # pixels between panels (room for an axis's labels and title), and below the last
    total = sum(heights) + gap * (len(groups) - 1)
    figure = go.Figure()
    row_labels, top = [], 0
    for row, group in enumerate(groups, start=1):
        domain = [1 - (top + heights[row - 1]) / total, 1 - top / total]
        top += heights[row - 1] + gap
        values = np.stack([entry.values for entry in group])  # (vectors, n)
        axis = group[0].axis
        probability = axis == "key" or group[0].name == "probabilities"
        norms = [f"{entry.name}  (‖·‖ {np.linalg.norm(entry.values):.2f})" if not probability else entry.name for entry in group]
        columns = values.shape[1]
        if axis == "key":
            values = np.where(np.arange(columns) > position, np.nan, values)  # ahead of the query: never looked at
        extent = float(np.nanmax(np.abs(values))) or 1.0
        suffix = "" if row == 1 else str(row)
        figure.add_trace(go.Heatmap(
            z=values, x=list(range(columns)), y=norms, xaxis=f"x{suffix}", yaxis=f"y{suffix}", colorscale=WEIGHTS if probability else SIGNED,
            zmin=0 if probability else -extent, zmax=1 if probability else extent, xgap=1 if columns <= 64 else 0, ygap=2,
            showscale=False,  # the scale is in the axis title: a colorbar per panel cost more to draw than the panel
            texttemplate="%{z:.2f}" if columns <= 16 else None,
            hovertemplate="%{y}<br>entry %{x}: %{z:.4f}<extra></extra>",
        ))
        figure.layout[f"xaxis{suffix}"] = dict(anchor=f"y{suffix}", nticks=8)
        figure.layout[f"yaxis{suffix}"] = dict(anchor=f"x{suffix}", domain=domain, autorange="reversed")
        axis_text(figure, norms, norms, 11, "left", row)
        row_labels += norms
        standoff = 4
        if axis == "key":
            standoff = 2 * token_axis_text(figure, trace, subplot=row)
        elif axis == "vocab":
            size = 9 if columns > 30 else 11
            axis_text(figure, list(range(columns)), [shown(t) for t in trace.vocabulary], size, subplot=row)
            standoff = 2 * size
        scale = "colour: weight from 0 (white) to 1 (dark blue)" if probability else f"colour: from {-extent:.2f} (blue) through 0 (white) to {extent:.2f} (red)"
        figure.layout[f"xaxis{suffix}"].title = dict(text=f"{AXES[axis]}   ·   {scale}", standoff=standoff, font=dict(size=12))
    figure.update_layout(title=title, height=total + margin + 50)
    return fixed_margins(figure, left=_label_px(row_labels) + 14, bottom=margin, top=50)


def matrix_figure(values: np.ndarray, title: str, row_labels=None, column_labels=None, probability: bool = False,
                  x_title: str | None = None) -> go.Figure:
    """A small matrix (or vector) with every number printed in its cell."""
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    rows, columns = values.shape
    row_labels = [shown(str(r)) for r in (row_labels if row_labels is not None else range(rows))]
    column_labels = [shown(str(c)) for c in (column_labels if column_labels is not None else range(columns))]
    finite = values[np.isfinite(values)]
    extent = float(np.abs(finite).max()) if finite.size else 1.0
    figure = go.Figure(go.Heatmap(
        z=np.where(np.isfinite(values), values, np.nan), x=column_labels, y=row_labels, xgap=1, ygap=1,
        colorscale=WEIGHTS if probability else SIGNED, zmin=0 if probability else -(extent or 1.0), zmax=1 if probability else (extent or 1.0),
        texttemplate="%{z:.2f}", textfont=dict(size=10), showscale=False, hovertemplate="row %{y}, column %{x}: %{z:.4f}<extra></extra>",
    ))
    figure.update_layout(title=dict(text=title, font=dict(size=13)), height=int(100 + 26 * rows + (22 if x_title else 0)))
    figure.update_xaxes(type="category", side="bottom", tickangle=0,
                        title=dict(text=x_title, font=dict(size=11), standoff=4) if x_title else None)
    figure.update_yaxes(type="category", autorange="reversed")
    return fixed_margins(figure, left=_label_px(row_labels, 12) + 14, bottom=30 + (22 if x_title else 0), top=40)


# Attention.


def attention_heatmap(trace: Trace, layer: int, head: int, position: int | None = None) -> go.Figure:
    """One head's weights: row = the position reading (query), column = the position read (key); above the diagonal is the future."""
    T = trace.length
    weights = np.where(np.tri(T, dtype=bool), trace.attention[layer, head], np.nan).astype(np.float32)  # (T, T), the future left blank
    names = [position_label(trace, i) for i in range(T)]
    reads = np.array([[f"query {names[i]} reads key {names[j]}" if j <= i else "" for j in range(T)] for i in range(T)])  # (T, T)
    figure = go.Figure(go.Heatmap(
        z=weights, x=list(range(T)), y=list(range(T)), colorscale=WEIGHTS, zmin=0, zmax=1, xgap=1 if T <= 40 else 0, ygap=1 if T <= 40 else 0,
        text=reads, hovertemplate="%{text}<br>weight %{z:.3f}<extra></extra>",
        colorbar=dict(title=dict(text="weight<br>(each row<br>sums to 1)", side="top"), thickness=12, len=0.7),
        texttemplate="%{z:.2f}" if T <= 8 else None,
    ))
    # the tokens along both axes, as text just outside the plotting area (see axis_text)
    ticks, labels, size = _token_labels(trace)
    text = dict(mode="text", text=labels, textfont=dict(size=size, color=INK), cliponaxis=False, hoverinfo="skip", showlegend=False)
    figure.add_trace(go.Scatter(x=ticks, y=[T - 0.5] * len(ticks), textposition="bottom center", **text))
    figure.add_trace(go.Scatter(x=[-0.5] * len(ticks), y=ticks, textposition="middle left", **text))
    if position is not None:
        figure.add_shape(type="rect", x0=-0.5, x1=position + 0.5, y0=position - 0.5, y1=position + 0.5, line=dict(color="#e07b00", width=2))
    figure.update_layout(
        title=dict(text=f"Layer {layer + 1}, head {head + 1}",
                   subtitle=dict(text="how much each position (row) reads from each earlier one (column)")),
        height=400 if T <= 8 else 680,
        xaxis=dict(title=dict(text="key: the position being read", standoff=2 * size), range=[-0.5, T - 0.5], constrain="domain",
                   showticklabels=False, showgrid=False, zeroline=False, ticks=""),
        yaxis=dict(title=dict(text="query: the position reading", standoff=_label_px(labels, size) + 6), range=[T - 0.5, -0.5],
                   scaleanchor="x", constrain="domain", showticklabels=False, showgrid=False, zeroline=False, ticks=""),
    )
    return fixed_margins(figure, left=_label_px(labels, size) + AXIS_TITLE_PX + 30, bottom=2 * size + AXIS_TITLE_PX, top=75)


def attention_overview(trace: Trace, layer: int, selected: int | None = None) -> go.Figure:
    """Every head of one layer, small, in rows of three: one heatmap with the heads tiled in it, which draws
    far faster than a subplot per head (weights in 256 shades, which keeps a long prompt's figure light)."""
    H, T = trace.n_head, trace.length
    columns = min(H, 3)
    rows = -(-H // columns)
    gap = max(2, T // 6)  # cells between tiles
    step = T + gap
    tiles = np.zeros((rows * step - gap, columns * step - gap), dtype=np.uint8)
    shapes, corners = [], []
    for h in range(H):
        top, left = (h // columns) * step, (h % columns) * step
        tiles[top : top + T, left : left + T] = np.round(np.where(np.tri(T, dtype=bool), trace.attention[layer, h], 0.0) * 255)
        chosen = h == selected
        shapes.append(dict(type="rect", x0=left - 0.5, x1=left + T - 0.5, y0=top - 0.5, y1=top + T - 0.5,
                           line=dict(color="#e07b00" if chosen else "#bbbbbb", width=3 if chosen else 1)))
        corners.append((left + T / 2 - 0.5, top - 0.5))
    figure = go.Figure(go.Heatmap(z=tiles, colorscale=WEIGHTS, zmin=0, zmax=255, showscale=False, hoverinfo="skip"))
    figure.add_trace(go.Scatter(x=[x for x, _ in corners], y=[y for _, y in corners], mode="text", text=[f"head {h + 1}" for h in range(H)],
                                textposition="top center", textfont=dict(size=12, color=INK), cliponaxis=False, hoverinfo="skip",
                                showlegend=False))
    figure.update_layout(
        title=dict(text=f"Every head of layer {layer + 1}", subtitle=dict(text="the orange frame is the one drawn large")),
        height=130 + 130 * rows, shapes=shapes, plot_bgcolor="white",
        xaxis=dict(visible=False, range=[-0.5, tiles.shape[1] - 0.5], constrain="domain"),
        yaxis=dict(visible=False, range=[tiles.shape[0] - 0.5, -0.5], scaleanchor="x", constrain="domain", constraintoward="top"),
    )
    return fixed_margins(figure, left=10, bottom=10, top=110)


# The residual stream.


def step_norms_figure(trace: Trace) -> go.Figure:
    """(2L + 1) x T heatmap: the L2 norm of what the embedding and each attention and MLP write, per position."""
    norms = trace.step_norms()
    figure = go.Figure(go.Heatmap(
        z=norms, x=list(range(trace.length)), y=trace.step_names(), colorscale="Viridis", xgap=1 if trace.length <= 40 else 0, ygap=1,
        colorbar=dict(title=dict(text="L2 norm", side="top"), thickness=12),
        texttemplate="%{z:.1f}" if trace.length <= 12 else None,
        hovertemplate="%{y} at position %{x}: wrote a vector of norm %{z:.3f}<extra></extra>",
    ))
    size = token_axis_text(figure, trace)
    axis_text(figure, trace.step_names(), trace.step_names(), 12, "left")
    figure.update_layout(title=dict(text="How much each step writes into the stream", subtitle=dict(text="the L2 norm of its output, per position")),
                         height=145 + 30 * len(norms),
                         xaxis=dict(title=dict(text="position in the prompt", standoff=2 * size)), yaxis=dict(autorange="reversed"))
    return fixed_margins(figure, left=_label_px(trace.step_names(), 12) + 14, bottom=2 * size + AXIS_TITLE_PX, top=75)


def position_norms_figure(trace: Trace, position: int) -> go.Figure:
    """At one position: each step's write (bars) and the stream's size after it (line)."""
    names = trace.step_names()
    figure = go.Figure()
    figure.add_trace(go.Bar(x=names, y=trace.step_norms()[:, position], name="norm of the step's write", marker_color=COLORS[0]))
    figure.add_trace(go.Scatter(x=names, y=trace.stream_norms()[:, position], name="norm of the stream after it", mode="lines+markers",
                                line=dict(color=COLORS[1])))
    # the subtitle is the legend: a legend box is one more thing plotly measures and places
    figure.update_layout(title=dict(text=f"At position {position_label(trace, position)}",
                                    subtitle=dict(text="bars: each step's write · line: the stream after it")),
                         yaxis=dict(title=dict(text="L2 norm", standoff=TITLE_STANDOFF)), xaxis=dict(tickangle=-45), height=360, showlegend=False)
    slanted = int(_label_px(names, 12) * 0.71) + 20  # the labels' depth at 45 degrees
    return fixed_margins(figure, left=_label_px(["00.0"], 12) + AXIS_TITLE_PX + 6, bottom=slanted, top=75)


# The logit lens and the final softmax.


def unit_of(trace: Trace) -> str:
    """What one token of this model is, in words a person uses: a character, or for the toy a word."""
    return "word" if max(map(len, trace.vocabulary)) > 1 else "character"


def lens_figure(trace: Trace, position: int | None = None) -> go.Figure:
    """Rows: the stream after the embedding and after each layer; columns: positions; each cell its top guess and how sure it is."""
    T, rows, unit = trace.length, trace.lens_probs.shape[0], unit_of(trace)
    top = trace.lens_probs.argmax(-1)  # (L + 1, T)
    confidence = trace.lens_probs.max(-1)
    guesses = [[shown(trace.vocabulary[top[r, t]]) for t in range(T)] for r in range(rows)]
    actual = [shown(trace.tokens[t + 1]) if t + 1 < T else "(not in the prompt)" for t in range(T)]
    figure = go.Figure(go.Heatmap(
        z=confidence, x=list(range(T)), y=trace.lens_names(), text=guesses, texttemplate="%{text}" if T <= LABELLED else None,
        textfont=dict(size=10 if T > 40 else 13), colorscale=WEIGHTS, zmin=0, zmax=1, xgap=1, ygap=1,
        customdata=[actual] * rows,
        hovertemplate="%{y}, position %{x}: top guess %{text} (p = %{z:.2f}); the prompt's next " + unit + " is %{customdata}<extra></extra>",
        colorbar=dict(title=dict(text="probability<br>of the top<br>guess", side="top"), thickness=12),
    ))
    if position is not None:
        figure.add_shape(type="rect", x0=position - 0.5, x1=position + 0.5, y0=-0.5, y1=rows - 0.5, line=dict(color="#e07b00", width=2))
    figure.update_layout(title=dict(text=f"Logit lens: the top guess for the next {unit}", subtitle=dict(text="if the model stopped after each layer")),
                         height=175 + 42 * rows,
                         yaxis=dict(autorange="reversed"))
    size = token_axis_text(figure, trace)
    axis_text(figure, trace.lens_names(), trace.lens_names(), 12, "left")
    figure.layout.xaxis.title = dict(text=f"position in the prompt (the guess is for the {unit} after it)", standoff=2 * size)
    return fixed_margins(figure, left=_label_px(trace.lens_names(), 12) + 14, bottom=2 * size + AXIS_TITLE_PX, top=75)


def lens_table(trace: Trace, position: int, k: int = 5) -> list[dict[str, str]]:
    """The top k guesses after each layer at one position, as rows for st.dataframe."""
    rows = []
    for name, guesses in zip(trace.lens_names(), trace.lens_top(position, k)):
        rows.append({"stream": name, **{f"guess {i + 1}": f"{shown(token)}  {p:.0%}" for i, (token, p) in enumerate(guesses)}})
    return rows


def probability_bars(trace: Trace, position: int, probs: np.ndarray, temperature: float, k: int = 20) -> go.Figure:
    """The top k tokens' probabilities at `temperature` (bars), against the model's own at temperature 1 (dots); the rest summed."""
    k = min(k, trace.vocab_size)
    order = np.argsort(-trace.probs[position], kind="stable")[:k]  # temperature never changes the order
    labels = [shown(trace.vocabulary[i]) for i in order]
    heights, original = list(probs[order]), list(trace.probs[position][order])
    if k < trace.vocab_size:
        labels.append(f"the other {trace.vocab_size - k}")
        heights.append(1 - float(np.sum(probs[order])))
        original.append(1 - float(np.sum(trace.probs[position][order])))
    figure = go.Figure()
    own = temperature == 1.0  # the bars are then the model's own probabilities, and marks beside them would repeat them
    figure.add_trace(go.Bar(x=labels, y=heights, name="at temperature 1: the model's own" if own else f"at temperature {temperature:g}: what sampling draws from",
                            marker_color=COLORS[0], text=[f"{p:.0%}" if p >= 0.01 else "" for p in heights], textposition="outside",
                            hovertemplate="%{x}: %{y:.4f}<extra></extra>", showlegend=True))
    if not own:
        figure.add_trace(go.Scatter(x=labels, y=original, mode="markers", name="the model's own (temperature 1)",
                                    marker=dict(color=COLORS[1], size=9, symbol="line-ew-open", line=dict(width=3)),
                                    hovertemplate="%{x}: %{y:.4f} at temperature 1<extra></extra>"))
    unit = unit_of(trace)
    figure.update_layout(
        title=f"The next {unit} after position {position_label(trace, position)}: the {k} likeliest of {trace.vocab_size}",
        yaxis=dict(title=dict(text="probability", standoff=TITLE_STANDOFF), range=[0, 1.08], tickformat=".0%"),
        xaxis=dict(title=dict(text=f"next {unit}", standoff=TITLE_STANDOFF), type="category", tickangle=0),
        height=380, legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1),
    )
    return fixed_margins(figure, left=_label_px(["100%"], 12) + AXIS_TITLE_PX + 6, bottom=2 * 12 + AXIS_TITLE_PX, top=50)


# The toy, in full.


def _labels(trace: Trace, axis: str, count: int) -> list:
    if axis == "key":
        return [f"{i}: {t}" for i, t in enumerate(trace.tokens)]
    if axis == "vocab":
        return list(trace.vocabulary)
    return list(range(count))


def _rows_of(items: list, same, width: int = 4) -> list[list]:
    """Consecutive items that `same` says belong together, in rows of at most `width`."""
    rows: list[list] = []
    for item in items:
        if rows and same(rows[-1][-1], item) and len(rows[-1]) < width:
            rows[-1].append(item)
        else:
            rows.append([item])
    return rows


def show_toy_numbers(trace: Trace, numbers: list[Numbers], weights: list[tuple[str, np.ndarray]], label: str, key: str = "itt_toy") -> None:
    """A stage of a small model in full: its numbers at every position (one row each), then its weights."""
    positions = [f"{i}: {t}" for i, t in enumerate(trace.tokens)]
    figures = []
    for row in _rows_of(numbers, lambda a, b: a.axis == b.axis and a.values.shape == b.values.shape, width=3):
        figures.append([matrix_figure(entry.values, entry.name, positions, _labels(trace, entry.axis, entry.values.shape[-1]),
                                      entry.axis == "key" or entry.name == "probabilities", x_title=AXES[entry.axis]) for entry in row])
    weight_rows = _rows_of(weights, lambda a, b: a[1].shape == b[1].shape)
    for row in weight_rows:
        figures.append([matrix_figure(values, f"{name} ({'×'.join(map(str, values.shape))})",
                                      list(trace.vocabulary) if name.startswith(("wte", "W_E")) else None) for name, values in row])
    if numbers:
        st.markdown(f"**{label}**: its numbers at every position of the prompt, one row per position.")
    for r, row in enumerate(figures):
        if r == len(figures) - len(weight_rows):
            st.markdown(f"**{label}**: its weights, the same at every position. A matrix has one row per output and one column per "
                        "input, as PyTorch stores it (so q = W_Q x, row by row)." if numbers else f"**{label}**")
        columns = st.columns(max(3, len(row)))
        for c, figure in enumerate(row):
            columns[c].plotly_chart(figure, key=f"{key}_{r}_{c}", config={"displayModeBar": False})
