"""What pass 1 shows the classifier (paper §3.3 A, Figure 3): the classification prompt, and the question.

The prompt is data, named: `t2` is t2's own wording (`t2core.tasks.categories.SYSTEM`, the text the
classification expert is trained on); `released` is the released code's `CLASSIFICATION_PROMPT`
(`utils.classify_samples`, the same text as `tasks/cls.py`), quoted below. The paper shows its adaptation
prompt only as Figure 3, an image the text copy of the paper does not reproduce, so the released code is
the only published text of it. The released code sends it as the system message, ends trimmed by its chat
template, the inner lines as written (their indentation included).

The question: the released code shows the classifier the bare problem (`problem` / `question` /
`instruction` of the sample), not the task's prompt; t2's tasks add format instructions to the user turn
("Solve the problem step by step...", "Write the function in a single ```python code block."), which can
pull the classifier off its own format. `bare_question` gives the question without them, from the sample's
own fields: a math problem's text; a coding task's description (MBPP) or function stub (HumanEval); a
multiple-choice question with its options as the released classifier data lists them (lettered tasks) or
alone (cloze tasks, which show no options).
"""

from __future__ import annotations

from dataclasses import dataclass

from t2core.registry import Registry
from t2core.tasks.base import ChoiceSample, CodeSample, MathSample, Task
from t2core.tasks.categories import SYSTEM

# The released code's text (self-adaptive-llms, utils.py `classify_samples` and tasks/cls.py), verbatim
# between its triple quotes, its leading and trailing whitespace trimmed as its chat template trims it.
RELEASED_PROMPT = """# Analyze the given question and classify it into one of four categories: 'code', 'math', 'reasoning' or 'other'. Follow these guidelines:

    1. Code: Questions asking for programming solutions, functions, algorithms. Often includes specific programming terms, language syntax, or data structures.
    2. Math: Questions involving mathematical calculations, formulas, statistics. Often includes numbers, equations, or mathematical operations.
    3. Reasoning: Questions requiring logical thinking, application of scientific knowledge, or critical analysis of information. Often presents statements that need evaluation based on general understanding. 
    4. Other: Questions not clearly fit into above categories.

    Instructions:
    - Consider the primary focus, skills, and knowledge required to answer the question.
    - If a question spans multiple categories, choose the most dominant one.
    - Provide your final classification within \\boxed{} notation. Example: \\boxed{reasoning}

    Format your response as follows:
    Classification: \\boxed{category}"""  # noqa: E501, W291 - quoted as released

@dataclass(frozen=True)
class Pass1Prompt:
    """A classification prompt: its system text, and the answer it asks for (`{}`: the category), which the
    choice formulation scores for each category."""

    system: str
    answer: str

    def answer_for(self, category: str) -> str:
        return self.answer.format(category)


PROMPTS: Registry[Pass1Prompt] = Registry("pass-1 prompt")
PROMPTS.register("t2", Pass1Prompt(SYSTEM, "Category: \\boxed{{{}}}"))  # = categories.category_answer
PROMPTS.register("released", Pass1Prompt(RELEASED_PROMPT, "Classification: \\boxed{{{}}}"))


def get_prompt(name: str) -> Pass1Prompt:
    """Pass-1 prompt `name` (UnknownNameError: one line naming the known ones)."""
    return PROMPTS.get(name)


def check_prompt(name: str) -> str:
    get_prompt(name)
    return name


def messages(question: str, prompt: str = "t2") -> list[dict[str, str]]:
    """The classification conversation: the named prompt as the system message, the question as the user's."""
    return [{"role": "system", "content": get_prompt(prompt).system}, {"role": "user", "content": question}]


def bare_question(task: Task, sample) -> str:
    """The question of `sample` without `task`'s format instructions (see the module docstring)."""
    if isinstance(sample, MathSample):
        return sample.question
    if isinstance(sample, CodeSample):
        return sample.prompt
    if isinstance(sample, ChoiceSample):
        if task.output_type == "choice":  # cloze: the task shows the question alone
            return sample.question
        options = "".join(f"{lab}. {text}\n" for lab, text in zip(sample.labels, sample.choices, strict=True))
        return f"{sample.question}\nOptions:\n{options}"
    return task.messages(sample)[-1]["content"]  # a task of another kind: its user turn as it is
