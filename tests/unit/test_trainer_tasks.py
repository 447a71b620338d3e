"""Tasks: generators agree with verifiers, perturbations fail, sampling is reproducible, splits are disjoint."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.errors import TrainerConfigError, UnknownTaskError
from trainer.tasks import ArithmeticTask, CountdownTask, Sample, get_task
from trainer.tasks.base import split_of
from trainer.tasks.countdown import evaluate_expression

GENERATED = [
    ArithmeticTask(digits=1),
    ArithmeticTask(digits=2),
    ArithmeticTask(digits=4, terms=3),
    CountdownTask(count=3, max_number=10),
    CountdownTask(count=4, max_number=20),
]
IDS = [t.key for t in GENERATED]


@pytest.mark.parametrize("task", GENERATED, ids=IDS)
def test_teacher_traces_pass_their_verifier(task):
    for split in ("train", "eval"):
        for i in range(200):
            sample = task.sample(3, i, split)
            assert task.verify(task.teacher_trace(sample), sample), (sample, task.teacher_trace(sample))


@pytest.mark.parametrize("task", GENERATED, ids=IDS)
def test_perturbed_answers_fail(task):
    for i in range(100):
        sample = task.sample(5, i)
        trace = task.teacher_trace(sample)
        body = trace[: trace.index("<a>")]
        wrong_number = str(int(sample.answer) + 1)
        assert not task.verify(body + f"<a>{wrong_number}</a>", sample)
        assert not task.verify(body, sample)  # no answer tag
        assert not task.verify(trace.replace("<a>", "<a>1"), sample) or sample.answer == "1" + sample.answer


def test_arithmetic_answer_is_the_sum_and_steps_are_columns():
    task = ArithmeticTask(digits=3)
    sample = Sample("arithmetic", "train", 0, 0, "Q:958+67", "1025", {"operands": [958, 67]})
    assert task.reasoning_lines(sample) == ["8+7+0=15|5", "5+6+1=12|25", "9+0+1=10|025", "c1|1025"]
    for i in range(50):
        s = task.sample(0, i)
        a, b = s.data["operands"]
        assert s.question == f"Q:{a}+{b}" and int(s.answer) == a + b and 100 <= a <= 999


def test_arithmetic_step_credit_counts_matching_lines():
    task = ArithmeticTask(digits=2)
    sample = Sample("arithmetic", "train", 0, 0, "Q:47+38", "85", {"operands": [47, 38]})
    assert task.step_credit("<t>7+8+0=15|5\n4+3+1=8|85\n</t><a>85</a>", sample) == 1.0
    assert task.step_credit("<t>7+8+0=15|5\n4+3+1=9|95\n</t><a>95</a>", sample) == 0.5
    assert task.step_credit("<t>7+8+0=15|5\n4+3+1=8|85\nc1|185\n</t><a>185</a>", sample) == pytest.approx(2 / 3)
    assert task.step_credit("7+8+0=15|5", sample) == 0.0  # no format, no credit


def test_countdown_verifier_is_strict():
    task = CountdownTask()
    sample = Sample("countdown", "train", 0, 0, "Use 3 8 10 to make 34", "34", {"numbers": [3, 8, 10]})
    ok = "<t>3*8=24\n24+10=34\n</t><a>{}</a>"
    assert task.verify(ok.format("3*8+10"), sample)
    assert task.verify(ok.format("10+8*3"), sample)  # any correct expression, not only the teacher's
    assert not task.verify(ok.format("3*8+10+0"), sample)  # 0 is not a given number
    assert not task.verify(ok.format("34"), sample)  # the target itself is not a given number
    assert not task.verify(ok.format("3*8+10*1"), sample)
    assert not task.verify(ok.format("8*8-30"), sample)  # 8 used twice
    assert not task.verify(ok.format("(3+8)/0"), sample)
    assert not task.verify(ok.format("__import__('os')"), sample)
    assert evaluate_expression("(9-3)*9")[0] == 54
    assert evaluate_expression("7/2")[0] * 2 == 7  # exact arithmetic


def test_countdown_step_credit_checks_the_arithmetic_of_each_line_not_the_target():
    task = CountdownTask()
    sample = Sample("countdown", "train", 0, 0, "Use 4 3 8 to make 96", "96", {"numbers": [4, 3, 8]})
    trace = "<t>{}</t><a>4*3*8</a>"
    assert task.step_credit(trace.format("4*3=12\n12*8=96\n"), sample) == 1.0
    assert task.step_credit(trace.format("8*4=32\n32-3=29\n"), sample) == 1.0  # right steps, missed target
    assert task.step_credit(trace.format("4*3=24\n24+8=96\n"), sample) == 0.0  # writes the target, computes nothing
    assert task.step_credit(trace.format("4*3=12\n12+8=96\n"), sample) == 0.5
    assert task.step_credit(trace.format("4*4=16\n16*8=128\n"), sample) == 0.0  # 4 is given once
    assert task.step_credit(trace.format("4*3=12\n12*12=144\n"), sample) == 0.5  # 12 was made once
    assert task.step_credit(trace.format("8/4=2\n2*3=6\n"), sample) == 1.0
    assert task.step_credit(trace.format("3/4=0\n"), sample) == 0.0  # only exact division
    assert task.step_credit(trace.format("4*3=12\n12*8=96\n96-8=88\n"), sample) == pytest.approx(2 / 3)
    assert task.step_credit(trace.format("4*3=12\n"), sample) == 0.5  # a step short
    assert task.step_credit("4*3=12\n12*8=96", sample) == 0.0  # no format, no credit
    for i in range(50):  # the teacher's own traces are right step by step
        s = task.sample(3, i)
        assert task.step_credit(task.teacher_trace(s), s) == 1.0


@pytest.mark.parametrize("task", GENERATED, ids=IDS)
def test_sampling_is_a_pure_function_of_seed_and_index(task):
    for index in (0, 1, 17, 2**31 + 5, 2**48, 2**48 - 1):
        assert task.sample(9, index) == task.sample(9, index)
        assert task.sample(9, index).index == index
    questions = {task.sample(1, i).question for i in range(100)}
    assert len(questions) > 30  # not a constant generator
    assert [task.sample(1, i) for i in range(20)] != [task.sample(2, i) for i in range(20)]


@pytest.mark.parametrize("task", GENERATED, ids=IDS)
def test_train_and_eval_are_disjoint_by_construction(task):
    train = {task.sample(seed, i, "train").question for seed in range(3) for i in range(400)}
    evals = {task.sample(seed, i, "eval").question for seed in range(3) for i in range(400)}
    assert train.isdisjoint(evals)
    assert all(split_of(task.key, q, task.eval_fraction) == "eval" for q in evals)
    assert all(split_of(task.key, q, task.eval_fraction) == "train" for q in train)


def test_sample_round_trips_through_json():
    sample = CountdownTask().sample(0, 3)
    assert Sample.from_json(sample.to_json()) == sample


def test_registry_errors_name_the_problem_and_the_fix():
    with pytest.raises(UnknownTaskError, match="unknown task 'sudoku': choose one of arithmetic, countdown, gsm8k"):
        get_task("sudoku")
    with pytest.raises(TrainerConfigError, match=r"has no parameter\(s\) \['digitz'\]"):
        get_task("arithmetic", digitz=3)
    with pytest.raises(TrainerConfigError, match="digits >= 1"):
        get_task("arithmetic", digits=0)
    assert isinstance(get_task("countdown", count=4), CountdownTask)


TAGGED = st.builds(
    lambda a, b, c: f"{a}<t>{b}</t><a>{c}</a>", st.text(max_size=20), st.text(max_size=40), st.text(max_size=30)
)


@settings(max_examples=300, deadline=None)
@given(junk=st.one_of(st.text(max_size=300), TAGGED, st.binary(max_size=100).map(lambda b: b.decode("latin1"))))
def test_verifiers_never_crash_on_junk(junk):
    for task in GENERATED:
        sample = task.sample(0, 0)
        assert task.verify(junk, sample) in (True, False)
        assert 0.0 <= task.step_credit(junk, sample) <= 1.0


@settings(max_examples=100, deadline=None)
@given(expression=st.text(alphabet="0123456789+-*/()* ", max_size=120))
def test_countdown_expression_parser_never_crashes(expression):
    result = evaluate_expression(expression)
    assert result is None or isinstance(result[1], list)


@settings(max_examples=200, deadline=None)
@given(body=st.text(alphabet="0123456789+-*/=\n", max_size=80))
def test_countdown_step_credit_never_crashes_on_trace_like_lines(body):
    task = CountdownTask()
    sample = Sample("countdown", "train", 0, 0, "Use 4 3 8 to make 96", "96", {"numbers": [4, 3, 8]})
    assert 0.0 <= task.step_credit(f"<t>{body}</t><a>4*3*8</a>", sample) <= 1.0
