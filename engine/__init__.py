"""Deep Learning Lab's engines: plain Python on numpy, scipy, torch and pillow, no Streamlit."""
