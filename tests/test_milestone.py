"""results/default/milestone.py: where a milestone stands against the codecs and the default."""

import json
import math

import pytest

from results.default import milestone

IMAGES = [f"im{i}.png" for i in range(6)]


def rows(name, kind, points, shift_db=0.0, per_image=0.0):
    """Rows of a curve PSNR = 28 + 6 log2(bpp / 0.2) (+ shift), one set per image."""
    out = []
    for i, image in enumerate(IMAGES):
        for q, bpp in enumerate(points):
            psnr = 28 + 6 * math.log2(bpp / 0.2) + shift_db + per_image * (i - 2.5)
            out.append(
                dict(
                    image=image,
                    kind=kind,
                    name=name,
                    quality=q,
                    bpp=bpp,
                    psnr=psnr,
                    ms_ssim=0.9,
                    height=64,
                    width=64,
                )
            )
    return out


CODEC_BPP = [0.05, 0.08, 0.12, 0.18, 0.25, 0.35, 0.5, 0.7]


def codecs(webp_shift=0.0):
    return rows("jpeg2000", "codec", CODEC_BPP) + rows("webp", "codec", CODEC_BPP, webp_shift)


def test_standing_reads_both_curves_at_each_rate_and_marks_the_targets():
    model = rows(
        "ckbd-full-vr", "model", [0.06, 0.1, 0.16, 0.24, 0.34, 0.45, 0.6], shift_db=0.5, per_image=0.1
    )
    base = rows("ckbd-full-vr", "model", [0.06, 0.1, 0.16, 0.24, 0.34, 0.45, 0.6])
    got = milestone.standing(model, codecs(webp_shift=1.0), base)
    for bpp in ("0.1", "0.15", "0.2", "0.3", "0.4", "0.5"):
        assert got["at_bpp"]["jpeg2000"][bpp]["mean_db"] == pytest.approx(0.5, abs=1e-6)
        assert got["at_bpp"]["webp"][bpp]["mean_db"] == pytest.approx(-0.5, abs=1e-6)
        lo, hi = got["at_bpp"]["jpeg2000"][bpp]["ci95"]
        assert lo < 0.5 < hi  # the images differ: a real interval
    assert "avif" not in got["at_bpp"]  # not in the codec rows: not invented
    assert got["versus_baseline"]["mean_pct"] < -5  # +0.5 dB is a rate saving
    record = {"standing": got}
    met = milestone.targets_met(record)
    assert met == {
        "jpeg2000@0.1": True,
        "jpeg2000@0.15": True,
        "jpeg2000@0.2": True,
        "jpeg2000@0.3": True,
        "webp@0.4": False,
        "webp@0.5": False,
    }


def test_a_rate_outside_the_model_curve_is_not_extrapolated():
    model = rows("m", "model", [0.1, 0.16, 0.24])
    got = milestone.standing(model, codecs(), None)
    assert got["at_bpp"]["webp"]["0.4"]["n"] == 0
    assert milestone.targets_met({"standing": got})["webp@0.4"] is None
    assert "versus_baseline" not in got


def test_update_keeps_one_record_per_run_and_step_and_rewrites_only_the_table(tmp_path):
    progress, readme = tmp_path / "progress.json", tmp_path / "README.md"
    readme.write_text("# Notes\n\nkept text\n")
    model = rows("m", "model", [0.06, 0.1, 0.16, 0.24, 0.34, 0.45, 0.6], shift_db=0.2)

    def record(step, shift):
        st = milestone.standing(
            rows("m", "model", [0.06, 0.1, 0.16, 0.24, 0.34, 0.45, 0.6], shift), codecs(), model
        )
        z = {str(q): {"z_share": 0.1 * (q + 1)} for q in milestone.Z_RATES}
        return {"run": "long", "step": step, "standing": st, "z": z}

    milestone.update(progress, readme, record(10000, 0.1))
    milestone.update(progress, readme, record(20000, 0.3))
    milestone.update(progress, readme, record(10000, 0.2))  # run again: replaced
    saved = json.loads(progress.read_text())
    assert [(p["run"], p["step"]) for p in saved] == [("long", 10000), ("long", 20000)]
    text = readme.read_text()
    assert text.startswith("# Notes\n\nkept text\n")
    assert text.count(milestone.BEGIN) == 1 and text.count(milestone.END) == 1
    table_rows = [line for line in text.splitlines() if line.startswith("| long |")]
    assert len(table_rows) == 2
    assert "+0.20 [" in table_rows[0] and "+0.30 [" in table_rows[1]
    assert "10%/40%/80%" in table_rows[0]


POINTS = [0.03, 0.06, 0.1, 0.16, 0.24, 0.34, 0.45, 0.6]


def tilted(gain_low_db, gain_high_db):
    """Model rows whose gain over `rows` goes from gain_low_db at 0.03 bpp to gain_high_db at 0.6."""
    out = rows("m", "model", POINTS, per_image=0.02)
    span = math.log2(POINTS[-1] / POINTS[0])
    for r in out:
        t = math.log2(r["bpp"] / POINTS[0]) / span
        r["psnr"] += gain_low_db + t * (gain_high_db - gain_low_db)
    return out


def test_a_milestone_ships_only_if_it_loses_nowhere_the_default_is_used():
    base = rows("m", "model", POINTS)
    better = milestone.standing(tilted(0.3, 0.3), codecs(), base)
    assert milestone.ships({"standing": better})["ships"]
    worse = milestone.standing(tilted(-0.3, -0.3), codecs(), base)
    assert not milestone.ships({"standing": worse})["ships"]
    # A large gain at the lowest rates and a loss above 0.2 bpp: a BD-rate below 0 that does not ship
    tilt = milestone.standing(tilted(1.5, -0.5), codecs(), base)
    assert tilt["versus_baseline"]["ci95"][1] < 0
    verdict = milestone.ships({"standing": tilt})
    assert not verdict["ships"] and "below the default at" in verdict["why"] and "0.4 bpp" in verdict["why"]
    assert milestone.ships({"standing": milestone.standing(tilted(0.3, 0.3), codecs(), None)}) == {
        "ships": False,
        "why": "not compared with the default",
    }
    # each rate's difference, '*' where its CI excludes 0 (the gain is linear in log-rate)
    assert milestone._versus(tilt["versus_baseline_at_bpp"]) == "+0.70*/+0.43*/+0.23*/-0.04*/-0.23*"


def write_rows(path, rs):
    """`rows` as a per_image_*.csv of jaxlic eval (the columns `matched.read_rows` reads)."""
    fields = ("image", "kind", "name", "quality", "bpp", "psnr", "ms_ssim", "height", "width")
    path.write_text(",".join(fields) + "\n" + "".join(",".join(str(r[f]) for f in fields) + "\n" for r in rs))


def test_refresh_recomputes_every_record_from_its_kept_rows(tmp_path):
    base = rows("m", "model", POINTS)
    progress, readme = tmp_path / "progress.json", tmp_path / "README.md"
    for step, gain in ((10000, -0.3), (20000, 0.3)):
        csv = tmp_path / f"per_image_long-{step}.csv"
        write_rows(csv, tilted(gain, gain))
        st = milestone.standing(rows("m", "model", POINTS), codecs(), base)  # stale: as the default
        milestone.update(
            progress, readme, {"run": "long", "step": step, "standing": st, "per_image_csv": str(csv)}
        )
    codecs_csv, base_csv = tmp_path / "codecs.csv", tmp_path / "base.csv"
    write_rows(codecs_csv, codecs())
    write_rows(base_csv, base)
    args = [
        "--refresh",
        "--progress",
        str(progress),
        "--readme",
        str(readme),
        "--codecs-csv",
        str(codecs_csv),
        "--baseline",
        str(base_csv),
    ]
    assert milestone.main(args) == 0
    saved = json.loads(progress.read_text())
    assert [r["ships"]["ships"] for r in saved] == [False, True]
    assert saved[1]["standing"]["versus_baseline_at_bpp"]["0.2"]["mean_db"] == pytest.approx(0.3, abs=1e-6)
    rows_text = [line for line in readme.read_text().splitlines() if line.startswith("| long |")]
    assert "| no |" in rows_text[0] and "| yes |" in rows_text[1]
