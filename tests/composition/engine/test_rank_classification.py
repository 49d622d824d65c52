"""Rank classification: the answer set rule, the choice, and likelihoods that match the loss."""

import pytest

from composition.engine.scoring import answer_choices, best_choice, majority_target
from composition.engine.types import EngineError, Example
from tests.composition.engine.conftest import EXAMPLES, HELDOUT

CHOICES = ("yes", "no", "( a )")


def test_the_answer_set_is_the_distinct_targets_sorted():
    assert answer_choices(["No", "Yes", "no", "Yes."]) == ("No", "Yes")
    assert answer_choices(["(B)", "(A)", "(C)", "(A)"]) == ("(A)", "(B)", "(C)")


def test_a_task_with_too_many_distinct_targets_has_no_answer_set():
    assert answer_choices([str(n) for n in range(21)]) is None
    assert answer_choices([str(n) for n in range(20)]) is not None
    assert answer_choices([str(n) for n in range(4)], max_choices=3) is None
    assert answer_choices([]) is None
    with pytest.raises(EngineError, match="room for 2"):
        answer_choices(["a"], max_choices=1)


def test_the_most_likely_choice_wins_and_a_tie_goes_to_the_first():
    assert best_choice(("a", "b", "c"), (-3.0, -1.0, -2.0)) == "b"
    assert best_choice(("a", "b"), (-1.0, -1.0)) == "a"
    with pytest.raises(EngineError, match="2 choices but 1"):
        best_choice(("a", "b"), (-1.0,))


def test_the_majority_target_counts_normalised_answers_and_breaks_ties_by_first_seen():
    assert majority_target(["Yes", "no", "yes.", "No", "YES"]) == "Yes"
    assert majority_target(["(B)", "(A)", "(A)", "(B)"]) == "(B)"
    with pytest.raises(EngineError, match="no examples"):
        majority_target([])


@pytest.mark.slow
@pytest.mark.parametrize("base_name", ["tiny_llama", "tiny_t5"])
def test_choice_likelihoods_equal_the_training_loss_of_each_answer(base_name, request):
    """Scoring from a cached prompt gives what the loss gives on prompt + answer, row by row."""
    import torch

    from composition.engine.encoding import causal_batch, encode_examples, seq2seq_batch
    from composition.engine.loading import BaseModelCache
    from composition.engine.loss import target_loss_sums
    from composition.engine.rank_classification import rank_classify

    base = request.getfixturevalue(base_name)
    loaded, _ = BaseModelCache().get(base, "cpu", "float32")
    inputs = [ex.input for ex in (*EXAMPLES, *HELDOUT)]
    with torch.inference_mode():
        ranked = rank_classify(loaded, inputs, CHOICES)
        build = seq2seq_batch if base.task_type == "SEQ_2_SEQ_LM" else causal_batch
        for text, answer in zip(inputs, ranked, strict=True):
            expected = []
            for choice in CHOICES:
                encoded = encode_examples(loaded.tokenizer, [Example(text, choice)], base.task_type)
                batch = build(encoded, loaded.tokenizer.pad_token_id)
                expected.append(-float(target_loss_sums(loaded.model, batch)))
            assert answer.log_likelihoods == pytest.approx(expected, abs=1e-4)
            assert answer.output == best_choice(CHOICES, expected)


@pytest.mark.slow
def test_shots_come_before_the_question_and_change_the_scores(tiny_llama):
    import torch

    from composition.engine.loading import BaseModelCache
    from composition.engine.rank_classification import choice_log_likelihoods

    loaded, _ = BaseModelCache().get(tiny_llama, "cpu", "float32")
    inputs = [ex.input for ex in HELDOUT]
    with torch.inference_mode():
        alone = choice_log_likelihoods(loaded, inputs, CHOICES)
        with_shots = choice_log_likelihoods(loaded, inputs, CHOICES, EXAMPLES[:2])
    assert len(with_shots) == len(HELDOUT) and all(len(row) == 3 for row in with_shots)
    assert with_shots != alone
