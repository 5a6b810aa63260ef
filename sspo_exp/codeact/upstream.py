"""M3ToolEval's own action format, ported from its authors' harness: the code-as-action prompt, the post-processing
of a reply, its parsing and the messages the environment answers with.

Source: ``xingyaoww/code-act``, ``scripts/eval/m3tooleval/main.py`` (``postprocess_fn``; ``run_task``'s retry
message and its ``"\\n*Extra reminder: " + extra_info``) and ``scripts/eval/m3tooleval/tasks/base.py``
(``Task.get_prompt`` for ``ActionMode.CODE_AS_ACTION``, ``Task.parse_generation``). The functions below keep
upstream's logic statement for statement (``tests/test_codeact_actions.py`` checks them against verbatim copies of
upstream's two functions over tricky replies), quirks included:

* ``postprocess`` cuts a reply at its **second** ``Answer:``/``Action:``, so after it a reply holds at most one
  marker. Upstream parses the post-processed reply, so ``parse_generation``'s "but not both" invalid message and its
  "more than one answer/action" reminders never fire in upstream's own loop (a reply ``Answer: 5 Action: x`` is the
  answer ``5``); they are ported all the same, as upstream has them.
* A marker inside code counts: ``Action: print("Answer:", x) End Action`` is cut before ``Answer:``, so the code run
  is ``print("``.
* When the first marker is ``Answer:`` and a second one follows, ``trimmed.find("Action:")`` is -1, so the
  ``End Action`` / ``Thought:`` searches start at index 6 instead of after an action: an answer is cut at a later
  ``Thought:`` (``Answer: 5 Thought: ok Answer: 6`` → ``Answer: 5``).
* With one marker only the leading whitespace is stripped, and a ``Thought:`` after the action is kept (it is cut
  only when a second marker exists); the action's code then runs up to ``End Action`` if present, else to the end.
* An answer is everything after ``Answer:``, stripped: trailing prose is part of it (hence the prompt's "Please ONLY
  output the answer").
"""

from __future__ import annotations

import re

#: ``run_task``'s reply to a wrong answer, verbatim.
RETRY_MESSAGE = ("Your answer is incorrect. Please try again. Note that you should ONLY output the answer "
                 "(e.g., single number), without any other text.")
#: ``run_task`` appends ``REMINDER + extra_info`` to an observation or the retry message when the parse gave one.
REMINDER = "\n*Extra reminder: "
INVALID_BOTH = "Invalid generation. Your output should contain either 'Action:' or 'Answer:', but not both."
INVALID_NONE = "Invalid generation. Your output should contain either 'Action:' or 'Answer:'"
MORE_ANSWERS = "You have output more than one answer. Only the first answer will be used."
MORE_ACTIONS = "You have output more than one action. Only the first action will be used."
END_ACTION = "End Action"

#: ``get_prompt``'s instructions for ``ActionMode.CODE_AS_ACTION``, verbatim.
CODE_AS_ACTION = (
    "You can use the tools by outputing a block of Python code that invoke the tools.\n"
    "You may use for-loops, if-statements, and other Python constructs when necessary.\n"
    "Be sure to print the final answer at the end of your code.\n"
    "You should begin your tool invocation with 'Action:' and end it with 'End Action'.\n"
    "Example: 'Action:\ntool_name(argument_1)\nEnd Action'\n"
)
START = "\nNow, let's get started!\n\n"
#: the sentences ``get_prompt`` closes every prompt with, verbatim.
CLOSING = (
    "\nYou can optionally express your thoughts using natural language before your action. For example, "
    "'Thought: I want to use tool_name to do something. Action: <your action to call tool_name> End Action'."
    "\nNote that your output should always contain either 'Action:' or 'Answer:', but not both."
    "\nWhen you are done, output the result using 'Answer: your answer'"
    "\nPlease ONLY output the answer (e.g., single number), without any other text."
)


def prompt(instruction: str, tool_desc: str | None) -> str:
    """``Task.get_prompt(ActionMode.CODE_AS_ACTION)``: ``tool_desc`` (upstream's tool list: "You have access to the
    following tools:", then per tool "[k] name: description" and "    Signature: …", each line ending with a
    newline) and a blank line, the code-as-action instructions, "Now, let's get started!", the instruction, the
    closing sentences. With ``tool_desc=None`` (a task without tools) the tool list and its blank line are left out,
    nothing else changes."""
    res = (tool_desc + "\n" if tool_desc is not None else "") + CODE_AS_ACTION
    return res + START + f"Instruction: {instruction}" + CLOSING


def postprocess(generation: str) -> str:
    """``postprocess_fn`` (``main.py``): a reply cut before its second ``Answer:``/``Action:`` (quirks: module
    docstring)."""
    generation = generation.lstrip()
    matches = list(re.finditer(r"(Answer:|Action:)", generation))
    if len(matches) <= 1:
        return generation
    trimmed = generation[: matches[1].start()].strip()
    first_action_end = trimmed.find("Action:") + len("Action:")  # 6 when the first marker is Answer: (quirk)
    end_action = trimmed.find(END_ACTION, first_action_end)
    if end_action != -1:
        trimmed = trimmed[: end_action + len(END_ACTION)].strip()
    next_thought = trimmed.find("Thought:", first_action_end)
    if next_thought != -1:
        trimmed = trimmed[:next_thought].strip()
    return trimmed


def parse_generation(generation: str) -> dict:
    """``Task.parse_generation`` (``tasks/base.py``): ``{"type": "answer" | "action" | "invalid", "content",
    "extra_info"}`` (``extra_info`` None when there is nothing to remind; absent for ``invalid``, as upstream)."""
    if "Answer:" in generation and "Action:" in generation:
        return {"type": "invalid", "content": INVALID_BOTH}
    if "Answer:" in generation:
        if generation.count("Answer:") > 1:
            return {"type": "answer", "content": generation.split("Answer:")[1].strip(), "extra_info": MORE_ANSWERS}
        return {"type": "answer", "content": generation[generation.find("Answer:") + len("Answer:") :].strip(),
                "extra_info": None}
    if "Action:" in generation:
        if generation.count("Action:") > 1:
            action, extra_info = generation.split("Action:")[1].lstrip(), MORE_ACTIONS
        else:
            action, extra_info = generation[generation.find("Action:") + len("Action:") :].lstrip(), None
        if END_ACTION in action:
            action = action[: action.find(END_ACTION)]
        return {"type": "action", "content": action, "extra_info": extra_info}
    return {"type": "invalid", "content": INVALID_NONE}
