rule predict:
    input:
        **stage_inputs("predict"),
        **stage_weights("predict"),
    output:
        **stage_outputs("predict"),
    params:
        **stage_params("predict"),
    resources:
        **stage_resources("predict"),
    benchmark:
        stage_benchmark("predict")
    log:
        stage_log("predict"),
    wildcard_constraints:
        bench=WHOLE,  # a split benchmark runs as parts and a gather (below)
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("predict")


# A benchmark with `shards: N` (N > 1): N part jobs over disjoint item ranges, then the gather, which writes the
# output the unsplit job writes (blindspot.contracts.parts).
rule predict_part:
    input:
        **stage_inputs("predict"),
        **stage_weights("predict"),
    output:
        **part_outputs("predict"),
    params:
        **stage_params("predict"),
    resources:
        **stage_resources("predict"),
    benchmark:
        split_benchmark("predict", "part")
    log:
        split_log("predict", "part"),
    wildcard_constraints:
        bench=SPLIT,
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("predict", part=True)


rule predict_gather:
    input:
        **gather_inputs("predict"),
    output:
        **stage_outputs("predict"),
    params:
        **gather_params("predict"),
    resources:
        **stage_resources("predict", job="gather"),
    benchmark:
        split_benchmark("predict", "gather")
    log:
        split_log("predict", "gather"),
    wildcard_constraints:
        bench=SPLIT,
    conda:
        "../envs/blindspot.yaml"
    shell:
        gather_cli("predict")
