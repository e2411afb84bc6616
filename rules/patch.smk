rule patch:
    input:
        **stage_inputs("patch"),
        **stage_weights("patch"),
    output:
        **stage_outputs("patch"),
    params:
        **stage_params("patch"),
    resources:
        **stage_resources("patch"),
    benchmark:
        stage_benchmark("patch")
    log:
        stage_log("patch"),
    wildcard_constraints:
        bench=WHOLE,  # a split benchmark runs as parts and a gather (below)
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("patch")


# A benchmark with `shards: N` (N > 1): N part jobs over disjoint item ranges, then the gather, which writes the
# output the unsplit job writes (blindspot.contracts.parts).
rule patch_part:
    input:
        **stage_inputs("patch"),
        **stage_weights("patch"),
    output:
        **part_outputs("patch"),
    params:
        **stage_params("patch"),
    resources:
        **stage_resources("patch"),
    benchmark:
        split_benchmark("patch", "part")
    log:
        split_log("patch", "part"),
    wildcard_constraints:
        bench=SPLIT,
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("patch", part=True)


rule patch_gather:
    input:
        **gather_inputs("patch"),
    output:
        **stage_outputs("patch"),
    params:
        **gather_params("patch"),
    resources:
        **stage_resources("patch", job="gather"),
    benchmark:
        split_benchmark("patch", "gather")
    log:
        split_log("patch", "gather"),
    wildcard_constraints:
        bench=SPLIT,
    conda:
        "../envs/blindspot.yaml"
    shell:
        gather_cli("patch")
