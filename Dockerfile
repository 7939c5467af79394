# Deep Learning Lab as a Hugging Face Docker Space (https://huggingface.co/docs/hub/spaces-sdks-docker)
# or on any server:  docker build -t dllab . && docker run -p 7860:7860 dllab
FROM python:3.11-slim

# Packages go into the image's own Python as root, so the app's user can import them but not change them.
# torch comes from its CPU-only index: PyPI's x86_64 wheel is the CUDA build, gigabytes a CPU Space never uses.
# The CPU wheels are tagged +cpu; requirements.txt's torch==2.14.1 accepts 2.14.1+cpu, so pip keeps them.
COPY --chown=root:root requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.14.1+cpu torchvision==0.29.1+cpu \
 && pip install --no-cache-dir -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# Hugging Face runs a Docker Space as uid 1000; so does this image anywhere else. USER below gives the
# number rather than the name, so a host can see without /etc/passwd that it is not root.
# /data is where a Space's persistent storage is mounted; made here and owned by the user, so that a
# fresh docker volume mounted there (which copies the folder's owner) is writable too.
RUN useradd -m -u 1000 user && mkdir /data && chown user:user /data
ENV HOME=/home/user PATH=/home/user/.local/bin:$PATH

# Everything the app writes goes under folders named here, none in the app folder. A path list is
# tried in order (engine/core/settings.py): /data, kept across restarts where storage is mounted
# there, else HOME when /data is not writable. /tmp holds temporary files.
ENV DLLAB_RUNS_DIR=/data/dllab/runs:/home/user/dllab/runs \
    DLLAB_CACHE=/data/dllab/cache:/home/user/.cache/dllab \
    XDG_CACHE_HOME=/home/user/.cache \
    XDG_CONFIG_HOME=/home/user/.config \
    TORCH_HOME=/home/user/.cache/torch \
    TORCHINDUCTOR_CACHE_DIR=/tmp/torchinductor \
    MPLCONFIGDIR=/home/user/.cache/matplotlib \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false

# The app's files belong to root: uid 1000 reads them and cannot change them, so a fault or a visitor
# can never alter the code or the shipped checkpoints.
WORKDIR $HOME/app
COPY --chown=root:root . $HOME/app

USER 1000:1000
EXPOSE 7860
CMD ["python", "serve.py", "--server.address=0.0.0.0", "--server.port=7860", "--server.headless=true", "--browser.gatherUsageStats=false", "--server.fileWatcherType=none"]
