# O2MKD: N small students over contiguous noise ranges (N = 1: one-to-one KD), one router
# per folder (`N<n>`, plus the settings that differ from the default: the O2MKD ablations;
# `it<iters>-N<n>-...-seed<s>`: the study's routers, with their FID curves).
# Its rows sample the router with DDIM at several step counts and with a fast solver; the
# profile rule (evaluate.smk) measures parameters, MACs and throughput of its table.


use rule _train as distill_o2mkd with:
    input:
        unpack(train_input("o2mkd")),
    output:
        model="results/students/o2mkd/{variant}/model.pt",
        meta="results/students/o2mkd/{variant}/model.pt.meta.json",
        curve="results/students/o2mkd/{variant}/fid_curve.json",
    log:
        "results/logs/distill/o2mkd/{variant}.log",
    wildcard_constraints:
        variant=r"(it\d+-)?N\d+[A-Za-z0-9_.+-]*",
    priority: 40
