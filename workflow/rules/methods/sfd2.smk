# SFD's second stage: the stage-1 student (Euler with AFS over sfd2.teacher_nfe + 2
# timestamps) teaches a 1-NFE student; its trajectories are cached like the teacher's
# (rule teacher_trajectories, source sfdnfe<teacher_nfe>).


if config["sfd2"]["enabled"]:

    use rule _train as distill_sfd2 with:
        input:
            unpack(train_input("sfd2")),
        output:
            model=naming.student_model("sfd2", "default", 1),
            meta=f"{naming.student_model('sfd2', 'default', 1)}.meta.json",
            curve=naming.student_model("sfd2", "default", 1).replace("model.pt", "fid_curve.json"),
        log:
            "results/logs/distill/sfd2/default/nfe1.log",
        priority: 40
