"""What the answer blocks hold (train/lab/reports/answer_blocks.py), counted over hand-made evaluation samples."""

from train.lab.reports.answer_blocks import COPIED, NO_BLOCK, OTHER, RIGHT, answer_block_counts, answer_block_kind

QUESTION = "Ava has 7 coins. She gets 2 more. How many coins does Ava have now?"


def sample(completion, kind="greedy", answer="9", question=QUESTION, outcome="failed"):
    return {"kind": kind, "prompt": "p", "completion": completion, "answer": answer, "question": question,
            "outcome": outcome}  # fmt: skip


def test_each_kind_of_answer_block_is_told_apart():
    assert answer_block_kind("7 + 2 = 9 <answer> 9 </answer>", "9", QUESTION) == RIGHT
    assert answer_block_kind("<answer>9.0</answer>", "9", QUESTION) == RIGHT  # compared as the grader does
    assert answer_block_kind("<answer>7</answer>", "9", QUESTION) == COPIED
    assert answer_block_kind("<answer>2 coins</answer>", "9", QUESTION) == COPIED
    assert answer_block_kind("<answer>10</answer>", "9", QUESTION) == OTHER
    assert answer_block_kind("<answer>your number</answer>", "9", QUESTION) == OTHER
    assert answer_block_kind("7 + 2 = 9", "9", QUESTION) == NO_BLOCK
    assert answer_block_kind("\\boxed{9}", "9", QUESTION) == NO_BLOCK  # graded correct, but no block
    # the last block counts, as for the grader
    assert answer_block_kind("<answer>9</answer> or <answer>7</answer>", "9", QUESTION) == COPIED


def test_counts_take_greedy_samples_only_and_list_every_kind_in_order():
    samples = [
        sample("<answer>9</answer>", outcome="correct"),
        sample("so 7 + 2 = 9. <answer>9</answer>", outcome="correct"),
        sample("<answer>7</answer>"),
        sample("<answer>nine</answer>"),
        sample("The answer is 9."),
        sample("<answer>9</answer>", kind="sampled"),  # a pass@k sample: not counted
    ]
    counts = answer_block_counts(samples)
    assert counts == {RIGHT: 2, COPIED: 1, OTHER: 1, NO_BLOCK: 1}
    assert list(counts) == [RIGHT, COPIED, OTHER, NO_BLOCK]


def test_without_a_question_field_the_chat_prompts_user_text_is_the_question():
    chat = [{"role": "system", "content": "Answer 3 ways."}, {"role": "user", "content": "Ben has 4 cards. +5?"}]
    rows = [{"kind": "greedy", "prompt": chat, "completion": completion, "answer": "9"} for completion in
            ("<answer>4</answer>", "<answer>3</answer>")]  # fmt: skip
    assert answer_block_counts(rows) == {RIGHT: 0, COPIED: 1, OTHER: 1, NO_BLOCK: 0}


def test_no_samples_count_nothing():
    assert answer_block_counts([]) == {RIGHT: 0, COPIED: 0, OTHER: 0, NO_BLOCK: 0}


def test_a_countdown_sample_graded_against_its_target_is_not_counted():
    """Countdown's gold is a target for an equation, not a number for the block: no "right number" to count."""
    countdown = {"kind": "greedy", "prompt": "3 5 -> 8", "completion": "<answer>3+5</answer>", "target": 8}
    assert answer_block_counts([countdown]) == {RIGHT: 0, COPIED: 0, OTHER: 0, NO_BLOCK: 0}
