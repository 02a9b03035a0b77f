"""The recipe every run follows: tokenize -> build the model -> train and evaluate -> keep weights -> time inference."""
from common import distributed
from common.artifacts import save_trained
from common.data import tokenize_splits
from common.inference import measure_inference
from common.models import build_model, build_tokenizer
from common.records import logs_dir
from common.timing import phase
from common.training import train_and_evaluate


def run(plan) -> dict:
    """One run, after its plan checked config, data and model: tokenize -> build -> train -> evaluate -> keep the
    trained weights -> time inference."""
    phases: dict = {}  # seconds per step, into the record (train_and_evaluate splits its own further)
    with phase(phases, "tokenize_s"):
        tokenizer = build_tokenizer(plan.cfg)
        encoded = tokenize_splits(plan.splits, tokenizer, plan.cfg.data, plan.cfg.train.padding)
    with phase(phases, "build_model_s"):
        model = build_model(plan.cfg, plan.model_config, runtime=plan.runtime)
    with phase(phases, "train_and_evaluate_s"):
        result = train_and_evaluate(model, tokenizer, encoded, plan.cfg, evaluate_test=plan.evaluate_test,
                                    log_dir=logs_dir(plan.cfg.output.dir, plan.run_id), runtime=plan.runtime)
    # What the trained model costs to keep and to use (sweep runs skip this). Rank 0 alone: under torchrun every
    # rank holds the same weights, and two ranks renaming into one results/models/<run_id> would collide.
    if plan.evaluate_test and distributed.is_main():
        with phase(phases, "save_s"):
            result["saved"] = save_trained(model, plan.cfg, plan.run_id)
        with phase(phases, "inference_s"):
            result["inference"] = measure_inference(model, plan.cfg.peft.method, encoded["test"], result["metrics"],
                                                    result["device"], result["precision"])
    result["phases_s"] = {**phases, **result.get("phases_s", {})}
    return result
