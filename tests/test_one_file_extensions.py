"""One file is enough: a task and a report defined and registered here, outside the packages, run
end to end on the tiny model through `t2 eval` and `t2 report` (docs/architecture.md, "Adding things")."""

import hashlib
import json
from pathlib import Path

from catalog.reports import register_report
from catalog.reports.common import Table
from t2core.tasks.base import Dataset, MathSample, Score, Task, register_task
from tests.conftest import catalog_rows, t2_inproc


class ToySums(Task):
    """Two-number sums from a JSONL file: the smallest generated-answer task."""

    name = "toy_sums"
    family = "math"
    category = "math"
    version = "1"
    splits = ("test",)
    max_new_tokens = 4

    def load(self, split: str, data_dir: Path | None) -> Dataset:
        self.check_split(split)
        f = Path(data_dir) / "toy_sums.jsonl"
        rows = [json.loads(line) for line in f.read_text().splitlines()]
        samples = [MathSample(id=str(i), question=f"{r['a']} + {r['b']} = ?", solution="", answer=str(r["a"] + r["b"]))
                   for i, r in enumerate(rows)]
        return Dataset(self.name, split, samples, {str(f): hashlib.sha256(f.read_bytes()).hexdigest()}, len(rows))

    def messages(self, sample):
        return [{"role": "user", "content": sample.question}]

    def score(self, sample, output: str) -> Score:
        got = output.strip().split()[:1]
        return Score(got[0] if got else "", bool(got) and got[0] == sample.answer)


def accuracy_by_task(cat, model=None):
    _, rows = cat.query("SELECT r.task, m.value FROM runs r JOIN metrics m ON m.run_id = r.run_id AND "
                        "m.name = 'n' WHERE r.kind = 'eval' ORDER BY r.task")
    return Table("Table 97: evaluated items by task", ["task", "n"], [[t, int(n)] for t, n in rows])


def test_a_task_and_a_report_from_one_file_each_run_end_to_end(t2_home, tmp_path):
    register_task(ToySums())
    register_report("table", 97, accuracy_by_task)
    data = tmp_path / "data"
    data.mkdir()
    (data / "toy_sums.jsonl").write_text("".join(json.dumps({"a": a, "b": b}) + "\n" for a, b in [(1, 2), (3, 4)]))

    r = t2_inproc("eval", "--model", "tiny-random", "--task", "toy_sums", "--split", "test", "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    assert catalog_rows(t2_home, "SELECT count(*) FROM samples") == [(2,)]
    out = t2_inproc("report", "--table", "97", "--format", "csv")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["task,n", "toy_sums,2"]
