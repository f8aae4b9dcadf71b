"""Two models compared on the same test examples: which questions only one of them gets wrong,
and whether that difference is more than chance (exact McNemar test).

Reads the per-example predictions files that evaluation writes (`NAME_predictions.jsonl`, one
line per example with its `id` and `correct`). Files are compared in pairs (model A's run with
seed 0 against model B's run with seed 0, ...), each pair on the same example ids; the counts of
all pairs are summed.
"""

import collections
import dataclasses
import json

from scipy import stats

from tfmm.errors import UserError


class PredictionsFileError(UserError):
    """A predictions file that cannot be compared (unreadable, no `correct`, other examples)."""


@dataclasses.dataclass(frozen=True)
class PairedCounts:
    """Examples of one comparison: both right, only A wrong, only B wrong, both wrong."""

    both_right: int = 0
    only_a_wrong: int = 0
    only_b_wrong: int = 0
    both_wrong: int = 0

    def __add__(self, other):
        return PairedCounts(*(mine + theirs for mine, theirs in
                              zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    @property
    def total(self) -> int:
        return sum(dataclasses.astuple(self))

    @property
    def a_wrong(self) -> int:
        return self.only_a_wrong + self.both_wrong

    @property
    def b_wrong(self) -> int:
        return self.only_b_wrong + self.both_wrong

    def mcnemar_p_value(self) -> float:
        """Two-sided exact McNemar p-value: the chance, were A and B equally good, of a split of
        the disagreements at least this uneven (a binomial test of only_a_wrong of the
        disagreements at one half). 1.0 when they never disagree."""
        disagreements = self.only_a_wrong + self.only_b_wrong
        if disagreements == 0:
            return 1.0
        return float(stats.binomtest(self.only_a_wrong, disagreements, 0.5).pvalue)


def read_predictions(path: str, group_field: str = "") -> dict:
    """{example id: its line} of a predictions file, every line checked.

    Raises:
        PredictionsFileError: unreadable file, a line that is not JSON, a line without `id`, a
            true/false `correct` (regression files have none) or the `group_field`, or an id
            given twice.
    """
    rows = {}
    try:
        handle = open(path, encoding="utf-8")
    except OSError as error:
        raise PredictionsFileError(f"cannot read predictions file {path}: {error}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise PredictionsFileError(f"{path}, line {number}: not JSON ({error})") from None
            if not isinstance(row, dict) or "id" not in row or not isinstance(
                    row.get("correct"), bool):
                raise PredictionsFileError(
                    f"{path}, line {number}: expected an `id` and a true/false `correct` (the "
                    "predictions file of a classification evaluation). Received: "
                    f"{line.strip()[:120]}")
            if group_field and group_field not in row:
                raise PredictionsFileError(f"{path}, line {number}: no field {group_field!r} to "
                                           f"group by. Received fields: {sorted(row)}")
            if row["id"] in rows:
                raise PredictionsFileError(f"{path}, line {number}: id {row['id']!r} appears "
                                           "twice")
            rows[row["id"]] = row
    if not rows:
        raise PredictionsFileError(f"{path}: no predictions")
    return rows


def compare_files(path_a: str, path_b: str, group_field: str = "") -> dict:
    """{group: PairedCounts} of two predictions files of the same examples; group "all" holds
    every example, and with `group_field` each value of that field (A's lines) gets its own.

    Raises:
        PredictionsFileError: as `read_predictions`, or when the files hold different ids.
    """
    a, b = read_predictions(path_a, group_field), read_predictions(path_b)
    if a.keys() != b.keys():
        only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
        raise PredictionsFileError(
            f"{path_a} and {path_b} must hold the same example ids to be compared. Received: "
            f"{len(only_a)} ids only in the first (e.g. {only_a[:2]}), {len(only_b)} only in "
            f"the second (e.g. {only_b[:2]})")
    groups = collections.defaultdict(PairedCounts)
    for key, row in a.items():
        right_a, right_b = row["correct"], b[key]["correct"]
        counts = PairedCounts(int(right_a and right_b), int(right_b and not right_a),
                              int(right_a and not right_b), int(not (right_a or right_b)))
        groups["all"] += counts
        if group_field:
            groups[str(row[group_field])] += counts
    return dict(groups)


def compare_runs(paths_a, paths_b, group_field: str = "") -> dict:
    """{group: PairedCounts} summed over the pairs (paths_a[i], paths_b[i])."""
    if len(paths_a) != len(paths_b) or not paths_a:
        raise PredictionsFileError(
            "expected as many predictions files for A as for B (one pair per seed), at least "
            f"one. Received: {len(paths_a)} and {len(paths_b)}")
    totals = collections.defaultdict(PairedCounts)
    for path_a, path_b in zip(paths_a, paths_b):
        for group, counts in compare_files(path_a, path_b, group_field).items():
            totals[group] += counts
    return dict(totals)
