"""eval.compare: codecs read at the rate of each model point."""

import json

import pytest

from eval import compare


def curve(name, bpp, psnr):
    return {"name": name, "results": {"bpp": bpp, "psnr-rgb": psnr}}


def test_codec_quality_is_interpolated_at_the_model_rate_and_never_extrapolated(tmp_path, capsys):
    model = curve("m", [0.2, 0.5], [30.0, 33.0])
    line = curve("line", [0.1, 0.4], [20.0, 26.0])  # pchip of two points: linear in log-rate
    result = compare.compare([model], [line])
    first, second = result["m"]
    # log(0.2/0.1) / log(0.4/0.1) = 0.5 of the way from 20 to 26 dB.
    assert first["line"] == pytest.approx(23.0) and first["psnr-rgb"] == 30.0
    assert second["line"] is None  # 0.5 bpp lies beyond the codec's curve
    assert "model +7.00" in compare.table(result) and "outside its curve" in compare.table(result)

    paths = []
    for c in (model, line):
        paths.append(tmp_path / f"{c['name']}.json")
        paths[-1].write_text(json.dumps(c))
    out = tmp_path / "summary.json"
    assert compare.main(["--models", str(paths[0]), "--codecs", str(paths[1]), "--json", str(out)]) == 0
    assert json.loads(out.read_text()) == result
    assert "23.00" in capsys.readouterr().out
