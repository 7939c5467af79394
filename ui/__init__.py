"""Streamlit and plotly building blocks shared by the pages."""
