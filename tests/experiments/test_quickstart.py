import json
import time

from featgeom.experiments.quickstart import CONDITIONS, run_quickstart


def test_quickstart_end_to_end_and_cached_rerun(tmp_path):
    kwargs = dict(preset="tiny", sae_samples=30_000, compare_samples=3000, n_perm=49, progress=False)
    report = run_quickstart(tmp_path, **kwargs)
    assert report == tmp_path / "report.html"
    page = report.read_text()
    assert "data:image/png;base64," in page and "Findings" in page
    for name in ("results.json", "results.csv", "quickstart.png", "quickstart.svg"):
        assert (tmp_path / name).stat().st_size > 0
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert [r["condition"] for r in results] == [c.label for c in CONDITIONS]
    gt = {r["condition"]: r["ground_truth"]["gt_mcc"] for r in results}
    assert gt[CONDITIONS[0].label] == 1.0 and abs(gt[CONDITIONS[2].label] - 0.7) < 0.05
    for r in results:
        for summary in r["pairings"].values():
            assert 0 < summary["svcca"]["p_value"] <= 1
    # everything expensive is cached in OUT/store: a re-run only re-measures
    start = time.perf_counter()
    run_quickstart(tmp_path, **kwargs)
    assert time.perf_counter() - start < 60
