# SFD: one student per (variant, NFE), each with its FID-during-training curve. A variant
# folder is `default` or the settings that differ from it (diffdistill.naming), so the
# ablation suite (SFD's Table 1) is more folders of the same rule.


use rule _train as distill_sfd with:
    input:
        unpack(train_input("sfd")),
    output:
        model="results/students/sfd/{variant}/nfe{nfe}/model.pt",
        meta="results/students/sfd/{variant}/nfe{nfe}/model.pt.meta.json",
        curve="results/students/sfd/{variant}/nfe{nfe}/fid_curve.json",
    log:
        "results/logs/distill/sfd/{variant}/nfe{nfe}.log",
    wildcard_constraints:
        nfe=r"\d+",
        variant=r"[A-Za-z0-9_.+-]+",
    # long jobs first, so the short sampling and FID jobs fill the gaps at the end
    priority: 40
