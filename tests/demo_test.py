from keras_nmt import cli
from keras_nmt import demo


def test_demo_with_a_tiny_budget_twice(tmp_path, capsys, monkeypatch):
    # The demo's settings, made small: this checks the workflow, not BLEU.
    small = demo.DEMO_SETTINGS.replace(units=16, embedding_dim=8)
    monkeypatch.setattr(demo, "DEMO_SETTINGS", small)
    out_dir = tmp_path / "demo-output"
    args = ["demo", "--out", str(out_dir), "--epochs", "1", "--max-pairs"]
    assert cli.main([*args, "300"]) == 0
    out = capsys.readouterr().out
    png = out_dir / "attention.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "Validation BLEU" in out
    assert "greedy" in out and "beam" in out and "reference" in out
    assert str(png) in out
    assert (out_dir / "model" / "model.keras").is_file()
    # Again into its own output: the earlier demo model is replaced.
    assert cli.main([*args, "200"]) == 0
    assert "Validation BLEU" in capsys.readouterr().out


def test_demo_never_writes_into_a_directory_it_did_not_make(tmp_path, capsys):
    (tmp_path / "attention.png").write_text("my own picture")
    assert cli.main(["demo", "--out", str(tmp_path), "--epochs", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty and holds no earlier demo" in err[0]
    assert (tmp_path / "attention.png").read_text() == "my own picture"
