# O2MKD x SFD: one router of small students per NFE (folder N<students>), fine-tuned with
# SFD's loss on SFD's trajectory caches.


use rule _train as distill_o2sfd with:
    input:
        unpack(train_input("o2sfd")),
    output:
        model="results/students/o2sfd/{variant}/nfe{nfe}/model.pt",
        meta="results/students/o2sfd/{variant}/nfe{nfe}/model.pt.meta.json",
        curve="results/students/o2sfd/{variant}/nfe{nfe}/fid_curve.json",
    log:
        "results/logs/distill/o2sfd/{variant}/nfe{nfe}.log",
    wildcard_constraints:
        variant=r"N\d+",
        nfe=r"\d+",
    priority: 40
