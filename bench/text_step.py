"""tfmm's text training step against the plain keras-hub recipe, on real-length texts.

Both train the same pretrained BERT ("minilm": all-MiniLM-L6-v2) with a dense head to tell which
of XQuAD's 32 Wikipedia articles a question comes from (real SQuAD dev questions), batch 32:

- keras-hub recipe: `keras_hub.models.BertTextClassifier` (BertBackbone + dropout + dense head),
  its `BertTextClassifierPreprocessor` padding every text to the maximum length (128), AdamW,
  `compile(jit_compile=True)`, `model.fit` on a tf.data dataset of strings;
- tfmm: `tfmm.preprocessing` (the same WordPiece packer, 128 tokens) in `ExamplePipeline` with
  `data.text_length_buckets` (texts cut per batch to 16/32/64/128, batches grouped by bucket),
  `build_multimodal_model` (text encoder: BertBackbone + masked mean pooling + dense head) and the
  `tfmm.training.Trainer` step (tf.function + GradientTape, XLA).

Every shape is timed side by side (interleaved rounds, rotating order) with a 2048x2048 matmul
that gives this round's peak; an epoch's examples/second follows from the step time of each shape
and the number of batches of each shape in the epoch. keras-hub's steps are timed inside `fit`
(a callback, from the first step's start to the last one's end: its tf.data tokenisation runs
in parallel, prefetched); tfmm's steps run on batches its pipeline produced, held in memory (the
pipeline's own share of a step: bench/input_pipeline.py). "Full-length": both train on
question + context texts that fill all 128 tokens, where bucketing cannot help. Printed: step times, examples/second,
ratios tfmm / keras-hub (median and per-round range), model FLOPs utilisation (analytic BERT
FLOPs: executed on the padded shape, and "useful" on the real tokens only), and the largest logit
difference between a batch cut to its bucket and the same batch padded to 128 (padding is masked,
so the model computes the same function). `--accuracy-epochs N` (instead of the timing) trains
both for N epochs on 80% of the questions, stratified by article, and reports test accuracy on
the rest.

    python bench/text_step.py            # float32 and bfloat16
    python bench/text_step.py --quick    # float32 only, 2 rounds, buckets (32,) only
    python bench/text_step.py --accuracy-epochs 3 --dtypes float32   # same accuracy?
"""

import collections
import json
import os
import tempfile
import time

import benchlib  # noqa: F401  (sys.path, TF logging)
from benchlib import interleave, matmul_peak, median, paired_ratios, ratio_line, spread

import numpy as np


def parse_args():
    parser = benchlib.parser(__doc__, rounds=3,
                             quick="float32 only, 2 rounds, buckets (32,): 3 XLA compilations")
    parser.add_argument("--data", default="../shared/data/xquad/xquad.en.dev-part.json",
                        help="SQuAD-format JSON (relative paths: to the repository root)")
    parser.add_argument("--preset", default="minilm")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--buckets", default="16,32,64", help="tfmm's data.text_length_buckets")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--steps", type=int, default=1, help="steps per variant and round")
    parser.add_argument("--jit", default="true", help="XLA for tfmm's step (true/false)")
    parser.add_argument("--learning-rate", type=float, default=2e-4,
                        help="peak AdamW rate of both (warmup 10%%, cosine decay)")
    parser.add_argument("--accuracy-epochs", type=int, default=0,
                        help="instead of timing: train both N epochs, compare test accuracy")
    args = parser.parse_args()
    if args.quick:
        args.rounds = min(args.rounds, 2)
        args.buckets = "32"
        args.dtypes = "float32"
    args.data = benchlib.repo_path(args.data)
    return args


# ------------------------------------------------------------------------------------------
# Data: questions (real length) and question + context (every text fills the max length).

def read_squad(path):
    with open(path) as handle:
        articles = json.load(handle)["data"]
    questions, contexts, labels = [], [], []
    for article in articles:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                questions.append(qa["question"].strip())
                contexts.append(paragraph["context"])
                labels.append(article["title"])
    return questions, contexts, labels


def write_manifest(path, texts, labels):
    with open(path, "w") as handle:
        for index, (text, label) in enumerate(zip(texts, labels)):
            handle.write(json.dumps({"id": str(index), "text": text, "label": label}) + "\n")
    return path


# ------------------------------------------------------------------------------------------
# FLOPs of a BERT training step, analytic (matmuls only; softmax, norms, GELU not counted).

def bert_train_flops(lengths, num_layers, hidden, intermediate, num_classes, head_input):
    """3 x forward FLOPs (backward = 2 x forward) summed over sequences of the given lengths.

    Per layer and sequence of L tokens: Q, K, V, output projections 8*L*d^2, feed-forward
    4*L*d*f, attention scores and weighted values 4*L^2*d.
    """
    lengths = np.asarray(lengths, np.float64)
    per_layer = 8 * lengths * hidden ** 2 + 4 * lengths * hidden * intermediate \
        + 4 * lengths ** 2 * hidden
    forward = num_layers * per_layer + 2 * head_input * num_classes
    return float(3 * forward.sum())


# ------------------------------------------------------------------------------------------

def build_keras_hub_recipe(backbone, tokenizer, num_classes, sequence_length, total_steps,
                           learning_rate):
    import keras
    import keras_hub
    from tfmm.config import TrainingConfig
    from tfmm.training.optimizer import build_optimizer

    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer=tokenizer, sequence_length=sequence_length)
    classifier = keras_hub.models.BertTextClassifier(backbone=backbone, num_classes=num_classes,
                                                     preprocessor=preprocessor)
    # The same AdamW, schedule and clipping as tfmm, so only the step and the padding differ.
    optimizer = build_optimizer(TrainingConfig(learning_rate=learning_rate, warmup_fraction=0.1),
                                total_steps)
    classifier.compile(optimizer=optimizer,
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                       metrics=["accuracy"], jit_compile=True)
    return classifier


class StepTimer:
    """A Keras callback: seconds from the first batch's start to the last batch's end."""

    def __new__(cls):
        import keras

        class _Timer(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                if batch == 0:
                    self.started = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                self.ended = time.perf_counter()

        return _Timer()


def tfmm_config(args, dtype, buckets, manifest, run_dir, total_steps_hint=100):
    from tfmm.config import Config

    config = Config()
    data, model, training = config.data, config.model, config.training
    data.train_manifest = manifest
    data.modalities = ("text",)
    data.text_sequence_length = args.sequence_length
    data.text_length_buckets = tuple(buckets)
    data.batch_size = args.batch_size
    model.text_preset = args.preset
    model.freeze_text_encoder = False
    model.fusion = "concat"
    model.head_hidden_dim = 0  # a dense head, as the keras-hub recipe
    model.dropout = 0.1
    training.run_dir = run_dir
    training.learning_rate = args.learning_rate
    training.warmup_fraction = 0.1
    training.mixed_precision = "bfloat16" if dtype == "bfloat16" else "none"
    training.jit_compile = args.jit
    training.checkpoint_every_steps = 0
    training.export = False
    return config.validate()


def main():
    args = parse_args()
    import keras
    import tensorflow as tf

    from tfmm.data.dataset import ExamplePipeline
    from tfmm.data.manifest import read_manifest_for_config
    from tfmm.models.multimodal_model import build_multimodal_model
    from tfmm.models.text_encoder import load_bert_backbone
    from tfmm.preprocessing.multimodal_preprocessor import MultimodalPreprocessor
    from tfmm.preprocessing.text_preprocessor import load_bert_tokenizer
    from tfmm.training.strategy import set_mixed_precision
    from tfmm.training.trainer import Trainer

    started = time.time()
    print(benchlib.machine_line())
    buckets = tuple(int(value) for value in args.buckets.split(",") if value.strip())
    batch = args.batch_size
    questions, contexts, titles = read_squad(args.data)
    tokenizer = load_bert_tokenizer(args.preset)
    question_lengths = np.array([len(ids) + 2 for ids in tokenizer(questions)])
    pairs = [f"{question} {context}" for question, context in zip(questions, contexts)]
    pair_lengths = np.array([len(ids) + 2 for ids in tokenizer(pairs)])
    full = [index for index, length in enumerate(pair_lengths) if length >= args.sequence_length]
    print(f"data: {len(questions)} XQuAD questions, {len(set(titles))} articles (classes); "
          f"question tokens ([CLS]/[SEP] included) median {median(question_lengths):.0f}, "
          f"mean {question_lengths.mean():.1f}, max {question_lengths.max()}; "
          f"full-length set: {len(full)} question + context texts of >= {args.sequence_length} "
          "tokens (cut to it)")
    print(f"batch {batch}, max length {args.sequence_length}, tfmm buckets {buckets} "
          f"(+{args.sequence_length}), tfmm XLA {args.jit}, preset {args.preset}")

    work = tempfile.mkdtemp(prefix="tfmm-bench-text-")
    question_manifest = write_manifest(os.path.join(work, "questions.jsonl"), questions, titles)
    full_manifest = write_manifest(os.path.join(work, "full.jsonl"), [pairs[i] for i in full],
                                   [titles[i] for i in full])
    class_names = tuple(sorted(set(titles)))
    label_index = {name: index for index, name in enumerate(class_names)}
    summary = collections.OrderedDict()
    if args.accuracy_epochs:
        for dtype in args.dtypes.split(","):
            set_mixed_precision("bfloat16" if dtype.strip() == "bfloat16" else "none")
            accuracy_check(args, dtype.strip(), questions, titles, class_names, tokenizer,
                           buckets, work)
        print(f"\ntotal {time.time() - started:.0f} s; {benchlib.machine_line()}")
        return

    for dtype in args.dtypes.split(","):
        dtype = dtype.strip()
        print(f"\n=== {dtype} ===")
        set_mixed_precision("bfloat16" if dtype == "bfloat16" else "none")
        keras.utils.set_random_seed(0)

        # --- tfmm: pipeline, model, trainer -------------------------------------------------
        config = tfmm_config(args, dtype, buckets, question_manifest, os.path.join(work, dtype))
        data_config = config.data
        data_config.labels = class_names
        preprocessor = MultimodalPreprocessor.from_data_config(data_config, args.preset)
        question_pipeline = ExamplePipeline(
            read_manifest_for_config(question_manifest, data_config), preprocessor,
            "multiclass", cache=True, text_length_buckets=buckets)
        full_pipeline = ExamplePipeline(
            read_manifest_for_config(full_manifest, data_config), preprocessor, "multiclass",
            cache=True, text_length_buckets=buckets)
        model = build_multimodal_model(config, len(class_names))
        steps = question_pipeline.steps_per_epoch(batch, drop_remainder=True)
        trainer = Trainer.from_config(model, config, tf.distribute.get_strategy(), steps, config.training.run_dir,
                          log=lambda line: None)
        epoch_batches = list(question_pipeline.batches(batch, shuffle=True, seed=0, epoch=0,
                                                        drop_remainder=True))
        shape_counts = collections.Counter(int(f["token_ids"].shape[1]) for f, _ in epoch_batches)
        epoch_real_lengths = np.concatenate([f["padding_mask"].numpy().sum(1)
                                             for f, _ in epoch_batches])
        full_batches = list(full_pipeline.batches(batch, shuffle=True, seed=0, epoch=0,
                                                   drop_remainder=True))
        assert all(f["token_ids"].shape[1] == args.sequence_length for f, _ in full_batches)
        print(f"tfmm epoch on the questions: {sum(shape_counts.values())} batches of "
              f"{batch} by text length {dict(sorted(shape_counts.items()))} "
              f"({len(questions) - batch * sum(shape_counts.values())} of {len(questions)} "
              "questions left in partial batches)")

        if dtype == "float32":
            # Padding is masked: the same texts cut to their bucket give the same logits.
            features, _ = epoch_batches[0]
            length = features["token_ids"].shape[1]
            padded = {name: (tf.pad(value, [[0, 0], [0, args.sequence_length - length]])
                             if name in ("token_ids", "segment_ids", "padding_mask") else value)
                      for name, value in features.items()}
            difference = np.abs(model(features)["logits"].numpy()
                                - model(padded)["logits"].numpy()).max()
            print(f"same function: max |logit(cut to {length}) - logit(padded to "
                  f"{args.sequence_length})| = {difference:.2e}")

        def tfmm_runner(batches):
            position = [0]

            def run():
                seconds = 0.0
                for _ in range(args.steps):
                    item = batches[position[0] % len(batches)]
                    position[0] += 1
                    begin = time.perf_counter()
                    loss, _ = trainer.train_step(item)  # the Trainer's own compiled step
                    float(loss)  # the Trainer reads the loss every step
                    seconds += time.perf_counter() - begin
                return seconds / args.steps
            return run

        by_length = collections.defaultdict(list)
        for item in epoch_batches:
            by_length[int(item[0]["token_ids"].shape[1])].append(item)

        # --- keras-hub recipe ---------------------------------------------------------------
        keras.utils.set_random_seed(0)
        backbone = load_bert_backbone(args.preset)
        classifier = build_keras_hub_recipe(backbone, tokenizer, len(class_names),
                                            args.sequence_length, total_steps=10 * steps,
                                            learning_rate=args.learning_rate)
        print(f"keras-hub backbone dtype policy: {backbone.dtype_policy.name}; tfmm: "
              f"{model.encoders['text'].dtype_policy.name}")
        timer = StepTimer()

        def keras_runner(texts, labels):
            dataset = tf.data.Dataset.from_tensor_slices(
                (texts, [label_index[title] for title in labels]))
            dataset = dataset.shuffle(len(texts), seed=0).batch(batch, drop_remainder=True).repeat()

            def run():
                classifier.fit(dataset, steps_per_epoch=args.steps, epochs=1, verbose=0,
                               callbacks=[timer])
                return (timer.ended - timer.started) / args.steps
            return run

        # --- compile everything once (timed for the record) -------------------------------
        peak, _ = matmul_peak(dtype)
        compile_seconds = {}
        variants = collections.OrderedDict()
        full_name = f"@{args.sequence_length} full-length texts"
        variants[f"keras-hub@{args.sequence_length}"] = keras_runner(questions, titles)
        variants["keras-hub" + full_name] = keras_runner([pairs[i] for i in full],
                                                         [titles[i] for i in full])
        for length in sorted(by_length):
            variants[f"tfmm@{length}"] = tfmm_runner(by_length[length])
        variants["tfmm" + full_name] = tfmm_runner(full_batches)
        for name, run in variants.items():
            begin = time.perf_counter()
            run()
            compile_seconds[name] = time.perf_counter() - begin
        print("first call (trace + XLA compile + one step), seconds: " + ", ".join(
            f"{name} {value:.0f}" for name, value in compile_seconds.items()))
        variants["matmul peak GFLOP/s"] = peak

        results = interleave(variants, args.rounds)
        peaks = results.pop("matmul peak GFLOP/s")
        keras_times = results[f"keras-hub@{args.sequence_length}"]
        keras_full = results["keras-hub" + full_name]
        tfmm_full = results["tfmm" + full_name]

        # --- report -------------------------------------------------------------------------
        config_backbone = backbone.get_config()
        flops = lambda lengths, head_input: bert_train_flops(  # noqa: E731
            lengths, config_backbone["num_layers"], config_backbone["hidden_dim"],
            config_backbone["intermediate_dim"], len(class_names), head_input)
        hidden = config_backbone["hidden_dim"]
        print(f"matmul peak ({dtype}, 2048^2, best of TF kernel and XLA): {spread(peaks)} GFLOP/s")
        for name, times in results.items():
            print(f"step {name}: {spread(times)} s")
        epoch_steps = sum(shape_counts.values())
        epoch_examples = batch * epoch_steps
        # Per round: an epoch of tfmm batches (their measured step time per shape) vs the same
        # number of keras-hub steps (all at 128).
        tfmm_epoch = [sum(count * results[f"tfmm@{length}"][r]
                          for length, count in shape_counts.items()) for r in range(args.rounds)]
        keras_epoch = [epoch_steps * keras_times[r] for r in range(args.rounds)]
        tfmm_rate = [epoch_examples / seconds for seconds in tfmm_epoch]
        keras_rate = [epoch_examples / seconds for seconds in keras_epoch]
        real_ratio = paired_ratios(tfmm_rate, keras_rate)
        full_ratio = paired_ratios(keras_full, tfmm_full)
        executed_keras = flops([args.sequence_length] * batch, hidden)
        executed_tfmm = sum(count * flops([length] * batch, 128)
                            for length, count in shape_counts.items())
        useful = flops(epoch_real_lengths, hidden)
        mfu_keras = [executed_keras / keras_times[r] / (peaks[r] * 1e9) for r in range(args.rounds)]
        mfu_tfmm = [executed_tfmm / tfmm_epoch[r] / (peaks[r] * 1e9) for r in range(args.rounds)]
        useful_keras = [useful / keras_epoch[r] / (peaks[r] * 1e9) for r in range(args.rounds)]
        useful_tfmm = [useful / tfmm_epoch[r] / (peaks[r] * 1e9) for r in range(args.rounds)]
        mfu_full_keras = [executed_keras / keras_full[r] / (peaks[r] * 1e9)
                          for r in range(args.rounds)]
        mfu_full_tfmm = [flops([args.sequence_length] * batch, 128) / tfmm_full[r]
                         / (peaks[r] * 1e9) for r in range(args.rounds)]
        print(f"real-length questions, examples/s: keras-hub {spread(keras_rate)}, "
              f"tfmm {spread(tfmm_rate)}")
        print(ratio_line(f"RATIO {dtype} real-length examples/s tfmm / keras-hub", real_ratio))
        print(ratio_line(f"RATIO {dtype} full-length (all {args.sequence_length} tokens) "
                         "step speed tfmm / keras-hub", full_ratio))
        print(f"MFU {dtype} (executed FLOPs / time / matmul peak): keras-hub "
              f"{median(mfu_keras):.1%}, tfmm {median(mfu_tfmm):.1%} (real-length); "
              f"full-length keras-hub {median(mfu_full_keras):.1%}, tfmm "
              f"{median(mfu_full_tfmm):.1%}")
        print(f"useful MFU {dtype} (FLOPs of the real tokens only): keras-hub "
              f"{median(useful_keras):.1%}, tfmm {median(useful_tfmm):.1%}")
        summary[dtype] = {"keras_rate": keras_rate, "tfmm_rate": tfmm_rate,
                          "keras_full": keras_full, "tfmm_full": tfmm_full}

        del trainer, model, classifier, backbone, question_pipeline, full_pipeline
        keras.backend.clear_session()

    if "float32" in summary and "bfloat16" in summary:
        for name in ("keras_rate", "tfmm_rate"):
            ratios = paired_ratios(summary["bfloat16"][name], summary["float32"][name])
            print(ratio_line(f"RATIO bfloat16 / float32 examples/s, {name.split('_')[0]} "
                             "(rounds paired by index, different phases)", ratios))
    print(f"\ntotal {time.time() - started:.0f} s; {benchlib.machine_line()}")


def accuracy_check(args, dtype, questions, titles, class_names, tokenizer, buckets, work):
    """Trains both for N epochs on 80% of the questions (stratified by article) and tests on
    the rest: bucketing must not cost accuracy."""
    import keras
    import tensorflow as tf

    from tfmm.models.text_encoder import load_bert_backbone
    from tfmm.training.runner import run_training

    random = np.random.default_rng(0)
    by_title = collections.defaultdict(list)
    for index, title in enumerate(titles):
        by_title[title].append(index)
    test = set()
    for indices in by_title.values():
        test.update(random.choice(indices, size=max(1, len(indices) // 5), replace=False))
    train = [i for i in range(len(questions)) if i not in test]
    test = sorted(test)
    train_manifest = write_manifest(os.path.join(work, "acc_train.jsonl"),
                                    [questions[i] for i in train], [titles[i] for i in train])
    test_manifest = write_manifest(os.path.join(work, "acc_test.jsonl"),
                                   [questions[i] for i in test], [titles[i] for i in test])
    epochs = args.accuracy_epochs
    batch = args.batch_size

    config = tfmm_config(args, dtype, buckets, train_manifest, os.path.join(work, "acc_tfmm"))
    config.data.test_manifest = test_manifest
    config.data.labels = class_names
    config.training.epochs = epochs
    begin = time.perf_counter()
    result = run_training(config, log=lambda line: None)
    tfmm_seconds = time.perf_counter() - begin
    tfmm_accuracy = result["report"]["accuracy"]

    keras.utils.set_random_seed(0)
    label_index = {name: index for index, name in enumerate(class_names)}
    steps = len(train) // batch
    classifier = build_keras_hub_recipe(load_bert_backbone(args.preset), tokenizer,
                                        len(class_names), args.sequence_length, steps * epochs,
                                        args.learning_rate)
    train_data = tf.data.Dataset.from_tensor_slices(
        ([questions[i] for i in train], [label_index[titles[i]] for i in train]))
    begin = time.perf_counter()
    for epoch in range(epochs):
        classifier.fit(train_data.shuffle(len(train), seed=epoch).batch(batch, drop_remainder=True),
                       epochs=1, verbose=0)
    keras_seconds = time.perf_counter() - begin
    logits = classifier.predict([questions[i] for i in test], batch_size=batch, verbose=0)
    keras_accuracy = float(np.mean(np.argmax(logits, -1)
                                   == np.array([label_index[titles[i]] for i in test])))
    print(f"accuracy after {epochs} epochs ({len(train)} train / {len(test)} test questions, "
          f"{dtype}): keras-hub {keras_accuracy:.3f} ({keras_seconds:.0f} s incl. compile), "
          f"tfmm with buckets {tfmm_accuracy:.3f} ({tfmm_seconds:.0f} s incl. compile and "
          "evaluation)")


if __name__ == "__main__":
    main()
