"""The tables of `benchmarks.tfa_baseline` (no TensorFlow Addons needed:
the numbers are made up, the benchmark never runs here)."""

from benchmarks import tfa_baseline as bench

OURS = 'style="bahdanau"'


def _rows(table):
    """{(task, model): [cells]} of a markdown table's body."""
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0], cells[1]] = cells[2:]
    return rows


def test_table_speeds_and_ratios_from_seconds():
    steps = 10
    seconds = {
        OURS: {
            "fit": [2.0, 4.0, 2.5],
            "greedy": [0.1, 0.2, 0.3],
        },
        bench.TFA: {
            "fit": [3.0, 6.0, 2.0],
            "greedy": [0.5, 0.3, 0.4],
        },
    }
    rows = _rows(bench.format_table(seconds, steps))
    assert set(rows) == {
        (bench.TITLES["fit"], OURS),
        (bench.TITLES["greedy"], OURS),
    }

    tokens = bench.BATCH * bench.LENGTH * steps
    fit = rows[bench.TITLES["fit"], OURS]
    assert fit[0] == f"{tokens / 2.5:,.0f}"  # the median round
    assert fit[1] == f"{tokens / 3.0:,.0f}"
    # Per round: tfa seconds / our seconds = 1.5, 1.5, 0.8; their median,
    # not the ratio of the medians (1.2).
    assert fit[2] == "1.50x (0.80-1.50)"

    greedy = rows[bench.TITLES["greedy"], OURS]
    assert greedy[:2] == ["200", "400"]  # ms
    # 5.0, 1.5, 1.33 (the ratio of the medians: 2.0).
    assert greedy[2] == "1.50x (1.33-5.00)"


def test_xla_rows_compare_with_tfa_graph_and_one_round_has_no_range():
    seconds = {
        OURS: {"beam_xla": [0.5]},
        bench.TFA: {"beam": [1.5]},
    }
    rows = _rows(bench.format_table(seconds, 1))
    assert rows == {(bench.TITLES["beam_xla"], OURS): ["500", "1,500", "3.00x"]}


def test_xla_fit_rows_compare_with_tfa_fit():
    seconds = {
        OURS: {"fit_xla": [2.0, 1.0]},
        bench.TFA: {"fit": [3.0, 3.0]},
    }
    rows = _rows(bench.format_table(seconds, 10))
    tokens = bench.BATCH * bench.LENGTH * 10
    assert rows == {
        (bench.TITLES["fit_xla"], OURS): [
            f"{tokens / 1.5:,.0f}",  # the median of 2.0 and 1.0 s
            f"{tokens / 3.0:,.0f}",
            "2.25x (1.50-3.00)",  # the median of the ratios 1.5 and 3.0
        ]
    }


def test_first_calls_table_marks_what_a_side_lacks():
    first = {
        OURS: {"fit": 12.34, "greedy_xla": 8.0},
        bench.TFA: {"fit": 30.0},
    }
    lines = bench.format_first_calls(first).splitlines()
    assert lines[0] == f"| first call (s) | {OURS} | {bench.TFA} |"
    body = {line.split(" | ")[0]: line for line in lines[2:]}
    assert body["| training, `model.fit`"].endswith("| 12.3 | 30.0 |")
    assert body["| greedy, 64 x 50 steps, ours XLA"].endswith("| 8.0 | - |")
    assert body["| beam 5, 64 x 50 steps, graph"].endswith("| - | - |")
