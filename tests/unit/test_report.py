"""Tables and report pieces computed from a hand-made summary table."""
from __future__ import annotations

import base64
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd

from partialkd.report import (FOREST_CAPTION, Report, edge_selections, overview_html, parameter_differences,
                              replicate_label, students_text)
from partialkd.reporting.document import Figure, Heading, Paragraph, TableBlock
from partialkd.reporting.style import VERDICT_MARKS
from partialkd.reporting.summary import SCORES
from partialkd.reporting.tables import (accuracy_table, pair_sim_degeneracy_table, pair_table,
                                        selected_variants, sim_degeneracy_table, to_markdown)
from helpers.report_rows import CIFAR, cifar_rows


def summary(rows: list[dict]) -> pd.DataFrame:
    base = {"role": "student", "teacher": "mlp", "bayes_test_acc": 0.7, "selected": True}
    return pd.DataFrame([{**base, **row} for row in rows])


def test_edge_selections_flag_majority_choices_at_a_grid_edge_but_not_hard_limits() -> None:
    rows = [{"gamma": 0.0, "seed": s, "method": "kd", "lam": 1.0, "tau": 4.0 if s < 2 else 2.0}
            for s in range(3)]
    grids = {"kd": {"lam": [0.5, 1.0], "tau": [1, 2, 4]}, "ce": {}}
    notes = edge_selections(summary(rows), "mlp", grids)
    assert notes == ["kd tau = 4 (the grid's highest value) at γ = 0: 2 of 3 seeds"]


def test_accuracy_table_reports_mean_and_sd_in_percent() -> None:
    rows = [{"gamma": 0.5, "seed": s, "method": m, "best_test_acc": acc}
            for s, (ce, kd) in enumerate([(0.50, 0.60), (0.52, 0.64)])
            for m, acc in (("ce", ce), ("kd", kd))]
    rows.append({"gamma": 0.5, "seed": 0, "method": "ce", "role": "teacher", "best_test_acc": 0.66})
    table = accuracy_table(summary(rows), "mlp")
    assert table.to_dict("records") == [{"γ": "0.5", "Bayes": "70.00", "teacher": "66.00",
                                         "ce": "51.00 ± 1.41", "kd": "62.00 ± 2.83"}]
    assert to_markdown(table).splitlines()[1] == "|---|---|---|---|---|"


PAIR_COLUMNS = ["model", "runs", "last epoch", "best on valid", "published", "Δ (ours)"]
PEERS_COLUMNS = ["peak test over epochs", "Δ (peers' protocol)"]


def test_pair_table_stands_beside_the_published_numbers() -> None:
    table = pair_table(cifar_rows(), CIFAR, "resnet56", "resnet20")
    assert list(table.columns) == [*PAIR_COLUMNS, *PEERS_COLUMNS, "chosen on valid (× seeds)"]
    table = table.set_index("model")
    assert list(table.index) == ["teacher", "ce", "kd", "kd_pt"]
    assert table.loc["teacher", "best on valid"] == "72.00" and table.loc["teacher", "published"] == "72.34"
    assert table.loc["teacher", "Δ (ours)"] == "-0.34"
    assert table.loc["ce", "best on valid"] == "70.00 ± 1.41" and table.loc["ce", "last epoch"] == "69.00 ± 1.41"
    assert table.loc["ce", "published"] == "69.06" and table.loc["ce", "Δ (ours)"] == "+0.94"
    assert table.loc["kd", "best on valid"] == "71.00 ± 1.41" and table.loc["kd", "published"] == "70.66"
    assert table.loc["kd", "Δ (ours)"] == "+0.34"
    assert table.loc["kd_pt", "best on valid"] == "not run" and table.loc["kd_pt", "published"] == ""
    assert table.loc["kd", "chosen on valid (× seeds)"] == "kd-x ×2"


def test_pair_table_compares_our_peak_test_accuracy_under_the_peers_protocol() -> None:
    """The peak over epochs (the published numbers' protocol) and its own Δ, beside ours."""
    table = pair_table(cifar_rows(), CIFAR, "resnet56", "resnet20").set_index("model")
    peaks = table[PEERS_COLUMNS].to_dict("index")
    assert peaks == {"teacher": {"peak test over epochs": "72.50", "Δ (peers' protocol)": "+0.16"},
                     "ce": {"peak test over epochs": "70.50 ± 1.41", "Δ (peers' protocol)": "+1.44"},
                     "kd": {"peak test over epochs": "72.00 ± 1.41", "Δ (peers' protocol)": "+1.34"},
                     "kd_pt": {"peak test over epochs": "not run", "Δ (peers' protocol)": ""}}


def test_pair_table_of_runs_without_a_recorded_peak_says_so() -> None:
    rows = cifar_rows()
    rows.loc[rows["method"] == "kd", "peak_test_acc"] = float("nan")
    table = pair_table(rows, CIFAR, "resnet56", "resnet20").set_index("model")
    assert table.loc["kd", "peak test over epochs"] == "not recorded"
    assert table.loc["kd", "Δ (peers' protocol)"] == ""
    assert table.loc["ce", "Δ (peers' protocol)"] == "+1.44"
    older = pair_table(cifar_rows().drop(columns="peak_test_acc"), CIFAR, "resnet56", "resnet20")
    assert set(older["peak test over epochs"]) == {"not recorded", "not run"}


def test_pair_table_of_a_track_without_the_peers_protocol_has_no_peak_columns() -> None:
    ptb = {"teachers": {"medium": {"arch": "medium", "target": {"ce": {}}}},
           "students": {"pairs": [{"teacher": "medium", "student": "small"}]}, "methods": {"ce": {}}}
    rows = pd.DataFrame([{"role": role, "teacher": teacher, "student": "small", "seed": 0, "method": "ce",
                          "variant": "ce", "best_test_ppl": ppl, "last_test_ppl": ppl + 1, "selected": True}
                         for role, teacher, ppl in (("teacher", "medium", 84.0), ("student", "none", 117.0))])
    table = pair_table(rows, ptb, "medium", "small", SCORES["ppl"], "ptb")
    assert list(table.columns) == [*PAIR_COLUMNS, "chosen on valid (× seeds)"]
    assert table["Δ (ours)"].tolist() == ["+1.30", "+2.50"]


def test_pair_table_of_a_label_smoothed_teacher_has_no_published_numbers() -> None:
    table = pair_table(cifar_rows(), CIFAR, "resnet56_ls", "resnet20").set_index("model")
    assert list(table.index) == ["teacher", "kd"]
    assert table.loc["kd", "best on valid"] == "61.00 ± 1.41"
    assert (table["published"] == "").all() and table.loc["teacher", "best on valid"] == "not run"


def test_selected_variants_count_the_seeds_per_grid_point_in_method_order() -> None:
    rows = [{"gamma": 0.5, "seed": s, "method": m, "variant": f"{m}-{v}"}
            for s, v in enumerate("aab") for m in ("kd", "ce")]
    table = selected_variants(summary(rows), "mlp")
    assert table.to_dict("records") == [
        {"γ": "0.5", "method": "ce", "selected on validation (× seeds)": "ce-a ×2, ce-b ×1"},
        {"γ": "0.5", "method": "kd", "selected on validation (× seeds)": "kd-a ×2, kd-b ×1"}]


def sim_rows() -> list[dict]:
    """Three seeds at γ = 0: kd_sim chose α = 10 twice (rows near uniform), kd_pt_sim α = 0.3."""
    rows = [{"gamma": 0.0, "seed": s, "method": "kd_sim", "variant": f"kd_sim-{alpha}", "alpha": alpha,
             "sim_entropy": entropy} for s, (alpha, entropy) in enumerate([(10.0, 0.999), (10.0, 0.997),
                                                                          (0.3, 0.5)])]
    rows += [{"gamma": 0.0, "seed": s, "method": "kd_pt_sim", "variant": "kd_pt_sim-0.3", "alpha": 0.3,
              "sim_entropy": 0.6} for s in range(2)]
    rows.append({**rows[0], "selected": False, "alpha": 0.1, "sim_entropy": 0.1})  # not chosen
    rows.append({"gamma": 0.0, "seed": 0, "method": "kd", "variant": "kd-x", "alpha": None,
                 "sim_entropy": None})
    return rows


def test_sim_degeneracy_table_gives_the_chosen_alphas_and_their_row_entropy() -> None:
    table = sim_degeneracy_table(summary(sim_rows()), "mlp")
    assert table.to_dict("records") == [
        {"γ": "0", "method": "kd_sim", "α chosen (× seeds)": "10 ×2, 0.3 ×1",
         "row entropy (1 = uniform)": "0.832 ± 0.288"},
        {"γ": "0", "method": "kd_pt_sim", "α chosen (× seeds)": "0.3 ×2",
         "row entropy (1 = uniform)": "0.600 ± 0.000"}]


def test_sim_degeneracy_table_of_runs_without_the_entropy_says_so() -> None:
    rows = [{k: v for k, v in row.items() if k != "sim_entropy"} for row in sim_rows()]
    table = sim_degeneracy_table(summary(rows), "mlp")
    assert set(table["row entropy (1 = uniform)"]) == {"not recorded"}


def test_pair_sim_degeneracy_table_has_a_row_per_pair_and_sim_method() -> None:
    rows = [{**row, "student": "resnet20", "teacher": teacher} for row in sim_rows()
            for teacher in ("resnet56", "resnet110")]
    table = pair_sim_degeneracy_table(summary(rows), [("resnet56", "resnet20"), ("resnet56_ls", "resnet20")])
    assert list(zip(table["pair"], table["method"])) == [("`resnet56` → `resnet20`", "kd_sim"),
                                                         ("`resnet56` → `resnet20`", "kd_pt_sim")]
    assert table["row entropy (1 = uniform)"].tolist() == ["0.832 ± 0.288", "0.600 ± 0.000"]


def table_stems(blocks: list) -> list[str]:
    return [block.table.stem for block in blocks if isinstance(block, TableBlock)]


def test_the_track_sections_show_the_sim_degeneracy_table_when_there_are_sim_students() -> None:
    params = {"claims": {"teacher": "mlp"},
              "synthetic": {"methods": {}, "data": {"world_seeds": [0]}, "student": {"seeds": [0]}}}
    synthetic = summary(sim_rows()).assign(best_test_acc=0.6)
    assert "synthetic/sim_degeneracy" in table_stems(Report(params, "tables").synthetic(synthetic, ()))
    without = synthetic[~synthetic["method"].str.contains("sim")]
    assert "synthetic/sim_degeneracy" not in table_stems(Report(params, "tables").synthetic(without, ()))
    cifar = pd.concat([cifar_rows(), pd.DataFrame([{**row, "role": "student", "teacher": "resnet56",
                                                     "student": "resnet20", "selected": True}
                                                    for row in sim_rows()])])
    params = {"cifar100": {**CIFAR, "data": {"valid_size": 100}}}
    assert "cifar100/sim_degeneracy" in table_stems(Report(params, "tables").image_track("cifar100", cifar, ()))


def track_paragraph(track: str, section: dict, summary_table: pd.DataFrame, score=SCORES["acc"]) -> str:
    """The text of an image track's opening paragraph."""
    blocks = Report({track: section}, "tables").image_track(track, summary_table, (), score)
    return next(block.text for block in blocks if isinstance(block, Paragraph))


def test_the_image_track_states_how_its_protocol_differs_from_the_published_one() -> None:
    text = track_paragraph("cifar100", {**CIFAR, "data": {"valid_size": 5000}}, cifar_rows())
    assert ("under another protocol: we train on 45,000 of the 50,000 training images and report the "
            "best-on-validation checkpoint; the published numbers come from training on all 50,000 "
            "training images and reporting the best test accuracy over the epochs.") in text
    assert "“Δ (ours)” is best-on-validation minus published." in text
    assert ("“peak test over epochs” is the best of the same runs' test accuracies recorded after "
            "every epoch (never used for selection here)") in text
    assert "“Δ (peers' protocol)” is it minus published" in text
    assert "same architectures and recipe" not in text
    other_split = track_paragraph("cifar100", {**CIFAR, "data": {"valid_size": 100}}, cifar_rows())
    assert "we train on 49,900 of the 50,000 training images" in other_split


def test_a_track_without_the_peers_protocol_keeps_the_plain_comparison() -> None:
    ptb = {"teachers": {"medium": {"arch": "medium", "target": {"ce": {}}}}, "methods": {"ce": {}},
           "students": {"seeds": [0], "pairs": [{"teacher": "medium", "student": "small"}]},
           "data": {"valid_size": 1}}
    rows = pd.DataFrame([{"role": "teacher", "teacher": "medium", "student": "small", "seed": 0,
                          "method": "ce", "variant": "ce", "best_test_ppl": 84.0, "last_test_ppl": 85.0,
                          "selected": True}])
    text = track_paragraph("ptb", ptb, rows, SCORES["ppl"])
    assert ("“published” is the published number for the same architectures and recipe (NOTES §4), "
            "where one exists; “Δ (ours)” is best-on-validation minus published.") in text
    assert "peak" not in text and "protocol" not in text


def test_students_text_counts_replicates_times_seeds() -> None:
    params = {"synthetic": {"data": {"world_seeds": [0, 1, 2]}, "student": {"seeds": [0, 1]}},
              "fashion_mnist": {"teacher_seeds": [0, 1, 2], "students": {"seeds": [0, 1, 2, 3]}},
              "cifar100": {"teacher_seed": 0, "students": {"seeds": [0, 1, 2]}}}
    assert students_text("synthetic", params) == "6 students (3 worlds × 2 seeds)"
    assert students_text("fashion_mnist", params) == "12 students (3 teacher seeds × 4 seeds)"
    assert students_text("cifar100", params) == "3 seeds"
    assert replicate_label("world1", "synthetic", params) == ", world 1 (the claims pool every world)"
    assert replicate_label("teacher_seed0", "cifar100", params) == ""  # one teacher: nothing to pool
    assert replicate_label("figures", "fashion_mnist", params) == ""


def test_the_claims_of_other_teachers_stand_beside_the_leading_ones() -> None:
    claim = {"id": "C1", "statement": "kd > ls", "verdict": "holds", "evidence": ["γ = 0: ..."],
             "parts": ["holds"], "level": 0.95, "caveats": []}
    claims = {"scope": "the students of the `mlp` teacher", "procedure": "The procedure.",
              "claims": [claim],
              "beside": [{"teacher": "oracle", "student": "linear",
                          "scope": "the `linear` students of the `oracle` teacher",
                          "claims": [{**claim, "verdict": "fails"}]}]}
    report = Report({}, "tables")
    blocks = report.claims({"synthetic": claims}, {})
    stems = table_stems(blocks)
    assert stems == ["synthetic/claims", "synthetic/claims_oracle_linear"]
    texts = [block.text for block in blocks if isinstance(block, Paragraph)]
    assert any("`oracle` teacher" in text for text in texts)


def test_the_forest_plots_open_the_claims_section_one_per_track() -> None:
    claim = {"id": "C1", "statement": "kd > ls", "verdict": "holds", "evidence": ["…"], "parts": ["holds"],
             "level": 0.95, "caveats": []}
    common = {"procedure": "The procedure.", "confidence": 0.95, "correction": "bonferroni", "claims": [claim]}
    claims = {"synthetic": {**common, "scope": "the `mlp` students", "margin": 0.5,
                            "beside": [{"teacher": "oracle", "student": None, "scope": "…", "claims": [claim]}]},
              "ptb": {**common, "scope": "small→tiny", "margin": 1.0, "metric": "ppl", "correction": "none"}}
    forests = {"ptb": ("figures/ptb/claims.png", "figures/ptb/claims.pdf"),
               "synthetic": ("figures/synthetic/claims.png", "figures/synthetic/claims.pdf")}
    blocks = Report({}, "tables").claims(claims, forests)
    assert isinstance(blocks[0], Heading) and blocks[0].text == "Claims"
    synthetic, ptb = blocks[1:3]  # in the tracks' order, before the procedure
    assert isinstance(blocks[3], Paragraph) and [synthetic.png, ptb.graphic] == [
        "figures/synthetic/claims.png", "figures/ptb/claims.pdf"]
    assert synthetic.caption.startswith("Synthetic study (NOTES §3), the claims at a glance (the `mlp` students; "
                                        "those beside them are in the tables below): one row per part")
    assert FOREST_CAPTION in synthetic.caption and "holds: blue dot" in synthetic.caption
    assert synthetic.caption.endswith("Level: 1 − α/m for a claim of m parts, α = 0.05 (Bonferroni); "
                                      "margin δ = 0.5 pts")
    assert ptb.caption.endswith("Level: 0.95 (no correction); margin δ = 1 ppl")
    assert not any(isinstance(block, Figure) for block in Report({}, "tables").claims(claims, {}))


def test_the_run_s_parameters_that_differ_from_params_yaml_are_listed() -> None:
    defaults = {"tracks": ["synthetic", "ptb"], "synthetic": {"data": {"world_seeds": [0, 1, 2, 3, 4], "dim": 30},
                                                              "teachers": ["mlp", "oracle"]}}
    run = {"tracks": ["synthetic"], "synthetic": {"data": {"world_seeds": [0, 1, 2], "dim": 30},
                                                  "teachers": ["mlp", "oracle"], "extra": {"a": 1}}}
    assert parameter_differences(run, defaults) == [
        ("tracks", "[synthetic]", "[synthetic, ptb]"),
        ("synthetic.data.world_seeds", "[0, 1, 2]", "[0, 1, 2, 3, 4]"),
        ("synthetic.extra", "{a: 1}", "—")]
    blocks = Report(run, "tables").this_run(defaults)
    assert table_stems(blocks) == ["parameters/this_run"]
    same = Report(defaults, "tables").this_run(defaults)
    assert [block.text for block in same if isinstance(block, Paragraph)] == ["This run uses `params.yaml` as it is."]


class Page(HTMLParser):
    """An HTML fragment's table rows (the text of each cell) and images (their attributes)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.images: list[dict[str, str | None]] = []
        self.in_cell = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("th", "td"):
            self.rows[-1].append("")
            self.in_cell = True
        elif tag == "img":
            self.images.append(dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        self.in_cell = self.in_cell and tag not in ("th", "td")

    def handle_data(self, data: str) -> None:
        if self.in_cell:
            self.rows[-1][-1] += data


def test_the_overview_gives_each_claim_s_verdict_per_track_and_embeds_the_forest_plots(tmp_path: Path) -> None:
    synthetic = {"scope": "the `mlp32` students", "claims": [
        {"id": "C1", "statement": "`kd` > `ls`", "verdict": "holds"},
        {"id": "C5", "statement": "kd_pt ≈ kd", "verdict": "fails", "caveats": ["kd_sim α = 0.5"]},
        {"id": "C9", "statement": "LS teachers distil worse", "verdict": "not run"}]}
    ptb = {"scope": "small→tiny", "claims": [{"id": "C1", "statement": "kd > ls (ppl)", "verdict": "inconclusive"},
                                             {"id": "C12", "statement": "larger: p_t nearer 1", "verdict": "holds"}]}
    forest = tmp_path / "claims.png"
    forest.write_bytes(b"\x89PNG planted")
    text = overview_html({"synthetic": synthetic, "ptb": ptb}, {"synthetic": forest})
    page = Page(text)
    assert page.rows == [["claim", "statement", "synthetic", "ptb"],
                         ["C1", "kd > ls", "holds", "inconclusive"],
                         ["C5", "kd_pt ≈ kd", "fails (caveat)", "—"],
                         ["C9", "LS teachers distil worse", "not run", "—"],
                         ["C12", "larger: p_t nearer 1", "—", "holds"]]
    assert '<td class="statement" title="`kd` &gt; `ls`"><code>kd</code> &gt; <code>ls</code></td>' in text
    assert f'<td style="color: {VERDICT_MARKS["fails"].color}; font-weight: bold">fails' in text
    assert "<td>not run</td>" in text
    # the one forest plot there is, inside the page, with its track's scope
    assert page.images == [{"src": f"data:image/png;base64,{base64.b64encode(forest.read_bytes()).decode()}",
                            "alt": "claims at a glance, synthetic"}]
    assert "Synthetic study (NOTES §3), the claims at a glance: the <code>mlp32</code> students" in text
    assert "small→tiny" not in text  # ptb has no forest plot: its verdicts alone


def test_the_reporting_steps_start_without_loading_torch():
    """The summary, claims, figures and report jobs need no torch: importing it would cost each of
    them about 1.6 s of start-up (torch-free layers: io, methods, provenance)."""
    modules = ("aggregate", "claims", "figures", "report")
    code = (f"import sys; import {', '.join(f'partialkd.{m}' for m in modules)}; "
            "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
