"""The job table: every job that made a table, found through the metadata sidecars."""
import json


def _meta(path, started, finished, pid=1, **args):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    (path.parent / f"{path.name}.meta.json").write_text(json.dumps(
        {"args": args, "pid": pid, "started_at": started, "finished_at": finished}))


def test_the_job_table_follows_every_file_a_table_read(tmp_path, monkeypatch):
    """From the metrics file to its samples, the model, the model's cache and the teacher:
    each job is counted once, by kind, and the span runs from the first start to the last
    finish."""
    from diffdistill.jobs import job_table

    monkeypatch.chdir(tmp_path)
    r = tmp_path / "results"
    _meta(r / "teacher/model.pt", 100.0, 300.0)
    _meta(r / "trajectories/c/nfe2/traj.pt", 300.0, 330.0, teacher="results/teacher/model.pt")
    _meta(r / "students/sfd/default/nfe2/model.pt", 330.0, 400.0, teacher="results/teacher/model.pt",
          trajectories="results/trajectories/c/nfe2/traj.pt")
    _meta(r / "samples/s/samples.npz", 400.0, 410.0, model="results/students/sfd/default/nfe2/model.pt")
    _meta(r / "samples/ref/samples.npz", 400.0, 405.0, pid=2)  # started at the same instant: another job
    curve = r / "students/sfd/default/nfe2/fid_curve.json"  # the training job's second output: one job
    _meta(curve, 330.0, 400.0)
    fid = r / "fid/s/fid.json"
    _meta(fid, 410.0, 415.0, samples="results/samples/s/samples.npz", ref="results/samples/ref/samples.npz")
    fid.write_text(json.dumps({"samples": "results/samples/s/samples.npz"}))
    df, span = job_table(["results/fid/s/fid.json", "results/students/sfd/default/nfe2/fid_curve.json"])
    assert dict(zip(df["job kind"], df["jobs"])) == {"train teacher": 1, "teacher trajectories": 1, "train sfd": 1,
                                                     "sampling": 2, "metrics": 1}
    assert span["seconds"] == 315.0 and span["jobs"] == 6
    assert df.set_index("job kind").loc["train teacher", "process s"] == 200.0
    # a target built after another (the claims after the main job) counts only its own jobs
    # (its training started while the main job's last jobs ran: its span starts when they end, at 415 s)
    _meta(r / "students/sfd/l2/nfe2/model.pt", 380.0, 560.0, pid=3, teacher="results/teacher/model.pt")
    _meta(r / "samples/l2/samples.npz", 560.0, 570.0, pid=4, model="results/students/sfd/l2/nfe2/model.pt")
    l2 = r / "fid/l2/fid.json"
    _meta(l2, 570.0, 575.0, pid=5, samples="results/samples/l2/samples.npz", ref="results/samples/ref/samples.npz")
    l2.write_text(json.dumps({"samples": "results/samples/l2/samples.npz"}))
    df, span = job_table(["results/fid/s/fid.json", "results/fid/l2/fid.json"], exclude=["results/fid/s/fid.json"])
    assert dict(zip(df["job kind"], df["jobs"])) == {"train sfd": 1, "sampling": 1, "metrics": 1}
    assert span["seconds"] == 575.0 - 415.0 and span["jobs"] == 3


def test_the_dated_page_keeps_each_tables_caption():
    """The caption says what a table's ± are (the main table's differ from vs_reference's):
    the summary page must not drop it for its section heading."""
    from diffdistill.jobs import summary_markdown

    span = {"finished": 0, "hosts": ["h"], "cpu": "cpu", "cores": 2, "platform": "p", "git_revisions": ["abc"],
            "versions": ["v"], "seconds": 60, "jobs": 1, "process_seconds": 60}
    page = summary_markdown("Main job", span, [("FID", "# FID (mean ± the 95 % half-width)\n\n| a |\n|---|\n| 1 |\n")])
    assert "## FID\n\nFID (mean ± the 95 % half-width).\n\n| a |" in page
