"""The sparse autoencoder page's sections: the settings, the data, the gradient check, training and its results."""

from __future__ import annotations

import numpy as np
import streamlit as st

from engine.core.errors import ConfigError, LabError
from engine.core.grids import png_bytes
from engine.core.jobs import JobState, JobView
from engine.sae.images import SOURCES, olshausen_available
from engine.sae.checkpoint import SHIPPED_CHECKPOINT, load_result, result_bytes
from engine.sae.patches import as_images
from engine.sae.train import (
    UFLDL,
    UFLDL_COST_TRAINED,
    UFLDL_COST_UNTRAINED,
    SAETrainConfig,
    SAEResult,
    cli_command,
    gradient_check,
    prepare_data,
    train,
)
from ui.address import address_notes, bound, share_box
from ui.errors import show_error
from ui.figures import histogram, live_curve_svg, loss_curve
from ui.images import grid_image, show_grid
from ui.job_panel import job_panel, job_running, start_job

UPLOAD_TYPES = ["png", "jpg", "jpeg", "tif", "tiff", "bmp", "gif", "webp"]
UPLOAD_KINDS = "PNG, JPEG, TIFF, BMP, GIF or WebP"
COST_SERIES = {"total cost": "cost", "reconstruction": "reconstruction", "weight decay": "weight_decay", "sparsity": "sparsity"}
DEFAULTS = {
    "sae_hidden": UFLDL.hidden_size, "sae_rho": UFLDL.rho, "sae_beta": UFLDL.beta, "sae_lam": UFLDL.lam,
    "sae_patches": UFLDL.num_patches, "sae_iterations": UFLDL.max_iters, "sae_seed": UFLDL.seed,
    "sae_patch_size": UFLDL.patch_size, "sae_source": UFLDL.source,
}


@st.cache_resource(max_entries=4, show_spinner="Whitening the images and sampling patches…")
def cached_data(config: SAETrainConfig, uploads: tuple, _progress=None):
    return prepare_data(config, list(uploads), _progress)


@st.cache_resource
def shipped_result():
    return load_result(SHIPPED_CHECKPOINT)


def seed_settings() -> None:
    """UFLDL's settings, before any widget is drawn (a link's or the person's own stay)."""
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)


def reset_to_ufldl():
    st.session_state.update(DEFAULTS)


def settings_section() -> list[tuple[str, bytes]]:
    """The settings, bound to the address; returns the photographs uploaded, as (name, bytes)."""
    st.subheader("Settings")
    row = st.columns(4)
    row[0].number_input("Hidden units", step=1, **bound("sae_hidden", (SAETrainConfig, "hidden_size")), help="How many filters to learn (UFLDL: 25).")
    row[1].number_input("ρ, target activation", step=0.01, format="%.3f", **bound("sae_rho", (SAETrainConfig, "rho")), help="Between 0 and 1 (UFLDL: 0.01).")
    row[2].number_input("β, sparsity weight", step=0.5, **bound("sae_beta", (SAETrainConfig, "beta")), help="UFLDL: 3.")
    row[3].number_input("λ, weight decay", step=1e-4, format="%.5f", **bound("sae_lam", (SAETrainConfig, "lam")), help="UFLDL: 0.0001.")
    row = st.columns(4)
    row[0].number_input("Patches", step=1000, **bound("sae_patches", (SAETrainConfig, "num_patches")), help="Random training patches (UFLDL: 10,000).")
    row[1].number_input("Patch size, pixels", step=1, **bound("sae_patch_size", (SAETrainConfig, "patch_size")), help="Side of the square patches (UFLDL: 8).")
    row[2].number_input("L-BFGS iterations", step=50, **bound("sae_iterations", (SAETrainConfig, "max_iters")), help="UFLDL: 400.")
    row[3].number_input("Seed", step=1, **bound("sae_seed", (SAETrainConfig, "seed")), help="Chooses the patches and the initial weights.")
    st.radio("Images", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="sae_source")
    uploaded = []
    if st.session_state.sae_source == "upload":
        files = st.file_uploader(f"Your grayscale or colour photographs: {UPLOAD_KINDS}, up to 20 MB each", type=UPLOAD_TYPES,
                                 accept_multiple_files=True, key="sae_uploads", max_upload_size=20)
        uploaded = [(file.name, file.getvalue()) for file in files or []]
    st.button("Reset to UFLDL's settings", on_click=reset_to_ufldl, icon=":material/restart_alt:")
    address_notes("sae")
    share_box("sae")
    return uploaded


def checked_config() -> SAETrainConfig | None:
    """The config the settings make, or None after showing why not."""
    try:
        # the engine's own checks: a seed of 1e20 or a beta of 1e308 is refused here in the config's words
        return SAETrainConfig.from_form(
            {"patch_size": st.session_state.sae_patch_size, "hidden_size": st.session_state.sae_hidden,
             "num_patches": st.session_state.sae_patches, "rho": st.session_state.sae_rho,
             "beta": st.session_state.sae_beta, "lam": st.session_state.sae_lam,
             "max_iters": st.session_state.sae_iterations, "seed": st.session_state.sae_seed,
             "source": st.session_state.sae_source}
        ).validate()
    except ConfigError as error:
        show_error(error)
        return None


def patches_or_offer(config: SAETrainConfig, uploaded: list):
    """The whitened images and their patches, or None with a note saying what is missing (and a download to offer)."""
    if config.source == "olshausen" and not olshausen_available() and not st.session_state.get("sae_download_ok"):
        st.info("Olshausen's ten images are not on this machine yet (2.6 MB). Set DLLAB_DATA_DIR to a folder "
                "that has them, or download them now.")
        if st.button("Download Olshausen's images", key="sae_download_images"):
            st.session_state.sae_download_ok = True
            st.rerun()
        return None
    if config.source == "upload" and not uploaded:
        st.info(f"Upload one or more photographs above ({UPLOAD_KINDS}, up to 20 MB each); each is converted to grayscale "
                "and whitened. A file marked in red was refused by the uploader: another kind of file, or larger than 20 MB.")
        return None
    bar = st.empty()

    def show_download(done: int, total: int):
        bar.progress(min(1.0, done / total), text=f"Downloading Olshausen's images: {done / 1e6:.1f} of {total / 1e6:.1f} MB")

    data = None
    try:
        data = cached_data(config, tuple(uploaded), show_download)
    except LabError as error:
        show_error(error)
    bar.empty()
    return data


def data_section(config: SAETrainConfig | None, uploaded: list):
    """The first whitened image and a hundred of the patches; returns the data (None while there is none)."""
    st.subheader("The data")
    data = patches_or_offer(config, uploaded) if config is not None else None
    if data is not None:
        image, patches = st.columns([1, 2])
        whitened = data.images[0]
        image.image(np.clip(0.5 + whitened / (6 * whitened.std()), 0, 1), caption="First image after 1/f whitening", width=260)  # ±3 std in gray
        with patches:
            show_grid(as_images(data.patches[:, :100], config.patch_size), f"100 of the {config.num_patches:,} normalised patches", columns=10, scale="unit", width_px=420)
    return data


def gradient_check_section(config: SAETrainConfig | None, data) -> None:
    st.subheader("Gradient check")
    st.caption("Backpropagation's gradient against central differences (ε = 10⁻⁴) on 100 patches, every parameter. UFLDL: below 10⁻⁹ means correct.")
    if st.button("Check gradients", disabled=data is None, key="sae_check"):
        with st.spinner("Perturbing every parameter twice…"):
            st.session_state.sae_gradcheck = (config, gradient_check(config, data.patches))
    checked_config, check = st.session_state.get("sae_gradcheck", (None, None))
    if check is not None and checked_config == config:  # a check of other settings says nothing about these
        verdict = "passes" if check.passed else "FAILS"
        (st.success if check.passed else st.error)(
            f"Relative difference {check.relative_difference:.2e} over {check.parameters:,} parameters and "
            f"{check.examples} patches: {verdict} (threshold {check.threshold:.0e})."
        )


def draw_live(view: JobView):
    curve, filters = st.columns([3, 2])
    curve.image(live_curve_svg(view.metrics, COST_SERIES, "Cost while training", "cost (log scale)", log_y=True, x_max=view.total),
                caption="Total cost and its three terms at each L-BFGS iteration so far")
    if "filters" in view.snapshots:
        with filters:
            show_grid(view.snapshots["filters"], "The filters (rows of W1) right now", width_px=320)


def result_numbers(result: SAEResult) -> None:
    """The cost before and after, beside UFLDL's published figures when the settings are UFLDL's."""
    st.metric("Cost before training", f"{result.initial.total:.2f}", help="At the random start; depends on the seed.")
    if result.config == UFLDL:
        st.metric("Cost after training", f"{result.final.total:.4f}", f"{result.final.total - UFLDL_COST_TRAINED:+.4f} vs UFLDL's {UFLDL_COST_TRAINED}", delta_color="inverse")
        st.caption(f"UFLDL's published run: {UFLDL_COST_UNTRAINED} → {UFLDL_COST_TRAINED} after 400 iterations, on the same settings.")
    else:
        st.metric("Cost after training", f"{result.final.total:.4f}")
        changed = ", ".join(f"{name} {value}" for name, value in vars(result.config).items() if getattr(UFLDL, name) != value)
        st.caption(f"UFLDL's published run ({UFLDL_COST_UNTRAINED} → {UFLDL_COST_TRAINED}) used its defaults; this run changed {changed}, so the costs are not comparable.")
    st.caption(f"{result.iterations} L-BFGS iterations: {result.seconds:.1f} s of optimisation{' (stopped early)' if result.stopped else ''}.",
               help="The optimiser's own time. The elapsed time above also counts computing the starting cost and these results.")
    st.caption(
        f"Final terms: reconstruction {result.final.reconstruction:.4f}, weight decay "
        f"{result.final.weight_decay:.4f}, sparsity {result.final.sparsity:.4f}."
    )


def draw_result(result: SAEResult, command: str, fingerprint: str, label: str):
    st.subheader(f"Results — {label}")
    filters, numbers = st.columns([3, 2])
    with filters:
        st.image(grid_image(result.filters(), width_px=480), caption=f"The {result.config.hidden_size} learned filters: each hidden unit's weights as an image")
    with numbers:
        result_numbers(result)
    curve, activations = st.columns(2)
    curve.plotly_chart(loss_curve(result.history, COST_SERIES, "Cost per iteration", "cost (log scale)", log_y=True), key="sae_result_curve")
    activations.plotly_chart(
        histogram(result.mean_activation, f"Mean activation of each hidden unit (target ρ = {result.config.rho:g})", "mean activation over the patches", result.config.rho, "ρ"),
        key="sae_activation_histogram",
    )
    originals, rebuilt = result.reconstructions()
    show_grid(np.concatenate([originals[:10], rebuilt[:10]]), "Top row: ten training patches. Bottom row: the autoencoder's reconstructions of them (same gray scale).",
              columns=10, scale="unit", width_px=720)
    weights, card = result_bytes(result, command, fingerprint)
    downloads = st.columns(3)
    downloads[0].download_button("Filters (PNG)", png_bytes(grid_image(result.filters(), width_px=480)), "sae_filters.png", "image/png", key="sae_download_png")
    downloads[1].download_button("Weights (.safetensors)", weights, "sae.safetensors", "application/octet-stream", key="sae_download_weights")
    downloads[2].download_button("Card (.json)", card, "sae.json", "application/json", key="sae_download_card")
    st.caption(f"Repeat this run from a shell: `{command}`")


def train_section(config: SAETrainConfig | None, data) -> None:
    """Train, the live job, then its result, or the shipped checkpoint's while no run of this session is to be shown."""
    st.subheader("Train")
    if st.button("Train", type="primary", disabled=data is None or job_running("sae"), key="sae_train", icon=":material/play_arrow:"):
        job = start_job("sae", f"Sparse autoencoder, {config.hidden_size} hidden", lambda report, c=config, p=data.patches: train(c, p, report))
        if job is not None:
            st.session_state[f"sae_meta_{job.id}"] = (cli_command(config), data.fingerprint)
    view = job_panel("sae", draw_live)
    if view is not None and view.state in (JobState.DONE, JobState.STOPPED) and view.result is not None:
        command, fingerprint = st.session_state.get(f"sae_meta_{view.id}", (cli_command(view.result.config), ""))
        draw_result(view.result, command, fingerprint, "your run")
    elif view is None or view.state.finished:
        try:
            result, card = shipped_result()
            draw_result(result, card["command"], card["data_fingerprint"], "the shipped checkpoint")
        except LabError as error:
            show_error(error)
