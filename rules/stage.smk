rule stage:
    output:
        table="results/staged/{bench}/items.parquet",
        images="results/staged/{bench}/images.parquet",
        rejects="results/staged/{bench}/rejects.parquet",
    params:
        slice=stage_slice_json,
    log:
        "results/logs/stage/{bench}.log",
    conda:
        "../envs/blindspot.yaml"
    shell:
        "blindspot stage --bench {wildcards.bench} --slice {params.slice:q}"
        " --out $(dirname {output.table:q}) > {log:q} 2>&1"
