def test_home_introduces_each_lab_and_shows_the_device(app):
    assert app.title[0].value == "Deep Learning Lab"
    assert any("Sparse autoencoder" in header.value for header in app.subheader)
    assert any("Device:" in caption.value for caption in app.sidebar.caption)
