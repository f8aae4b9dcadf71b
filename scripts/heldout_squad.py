"""Writes the articles a question-answering run held out for evaluation as a SQuAD JSON file.

    python scripts/heldout_squad.py runs/xquad_minilm heldout.json
    python evaluate.py runs/xquad_minilm/litert/model_int8.tflite --data heldout.json \
        --name test_model_int8

A run whose `qa.eval_file` is empty splits `qa.train_file` by article (`qa.eval_fraction`); this
script writes exactly the articles that split gave to evaluation (the questions of the run's
eval_report.json), so `evaluate.py` can score an exported or compressed model on them.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a finished question-answering run folder")
    parser.add_argument("out", help="the SQuAD JSON file to write")
    args = parser.parse_args(argv)
    from tfmm.recipes.qa import load_span_examples
    from tfmm.run_folder import RunFolder

    config = RunFolder(args.run_dir).read_config()
    if config.data.task != "qa" or config.qa.eval_file or not config.qa.train_file:
        print(f"error: {args.run_dir} is not a question-answering run that split its "
              f"qa.train_file by article (task {config.data.task!r}, eval_file "
              f"{config.qa.eval_file!r}): score its eval_file directly", file=sys.stderr)
        return 2
    _, evaluation, _ = load_span_examples(config, log=lambda line: None)
    titles = {example.title for example in evaluation}
    with open(config.qa.train_file) as handle:
        squad = json.load(handle)
    squad["data"] = [article for article in squad["data"] if article["title"] in titles]
    with open(args.out, "w") as handle:
        json.dump(squad, handle)
    questions = sum(len(paragraph["qas"]) for article in squad["data"]
                    for paragraph in article["paragraphs"])
    print(f"{args.out}: {len(squad['data'])} held-out articles, {questions} questions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
