from keras_nmt import cli
from keras_nmt import demo


def test_demo_with_a_tiny_budget(tmp_path, capsys, monkeypatch):
    # The demo's settings, made small: this checks the workflow, not BLEU.
    monkeypatch.setitem(demo.DEMO_SETTINGS, "units", 16)
    monkeypatch.setitem(demo.DEMO_SETTINGS, "embedding_dim", 8)
    out_dir = tmp_path / "demo-output"
    status = cli.main(
        ["demo", "--out", str(out_dir), "--epochs", "1", "--max-pairs", "300"]
    )
    assert status == 0
    out = capsys.readouterr().out
    png = out_dir / "attention.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "Validation BLEU" in out
    assert "greedy" in out and "beam" in out and "reference" in out
    assert str(png) in out
    assert (out_dir / "model" / "model.keras").is_file()
