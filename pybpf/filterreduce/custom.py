"""Filters and reductions written as Python functions, compiled by pybpf.jit.

``FilterReduce(filter=keep)`` with ``keep(x) -> bool`` runs the compiled function
where a number ends, as a subprogram of the generated filter stage (stage.py), in
place of an expression's inlined test. The jit is the ``jit`` extra (llvmlite): this
module imports it only when a function is given.
"""
import functools


class Function:
    """A filter compiled from a Python function: keeps x when fn(x) is true. fn may
    also be a jit.CompiledFunction (e.g. from jit.compile(name, source=...))."""

    def __init__(self, fn):
        from .. import jit
        self.compiled = fn if isinstance(fn, jit.CompiledFunction) else jit.compile(fn)
        self.fn = self.compiled.python
        if self.compiled.nparams != 1:
            raise jit.JitError(f"a filter takes one argument, the number; "
                               f"{self.compiled.name} takes {self.compiled.nparams}")
        self.source = f"{self.compiled.name} (a Python function, compiled)"

    @functools.cached_property
    def code(self):
        """The function's instructions as the filter stage embeds them."""
        from .stage import FunctionCode
        return FunctionCode(self.compiled.instructions())

    def predicate(self, x):
        """The filter's meaning for the reference computation: Python's."""
        return bool(self.fn(x))

    def __str__(self):
        return self.source


class Reduce:
    """A reduction written as a Python step function over a state of named 64-bit
    integers and integer arrays:

        def step(s, x):
            s.n += 1
            s.sq += x * x
            s.hist[x % 16] += 1

        Reduce(state={"n": 0, "sq": 0, "hist": [0] * 16}, step=step)

    The step is compiled by pybpf.jit and runs in the kernel for every number the
    filter keeps; the result has the state's fields by name (result.custom), and
    finish, if given, is called on them in Python (e.g. a mean from n and a sum).
    An index out of range (Python's IndexError) abandons that step and is counted in
    result.custom["index_errors"]."""

    def __init__(self, state, step, finish=None):
        from .. import jit
        from ..jit.subset import parse_state
        from .layout import STATE_SLOTS
        self.shapes, self.initial = parse_state(state)
        slots = sum(n or 1 for n in self.shapes.values())
        if slots > STATE_SLOTS - 1:
            raise jit.JitError(f"a reduce state holds at most {STATE_SLOTS - 1} 64-bit "
                               f"values; this one has {slots}")
        self.step, self.finish = step, finish
        self.compiled = jit.compile(step, step_state=self.shapes)
        self.name = f"{self.compiled.name} (a Python reduce step, compiled)"

    def initial_slots(self):
        """The state's slot values before the first number (layout.State order)."""
        out = []
        for name in self.shapes:
            out.extend(self.initial[name])
        return out

    def decode(self, slots):
        """{field: value or list} from the kernel's slots, plus index_errors, plus
        finish's result under "finish" when given."""
        from .layout import STATE_SLOTS
        fields, at = {}, 0
        for name, length in self.shapes.items():
            fields[name] = slots[at] if length is None else list(slots[at:at + length])
            at += length or 1
        fields["index_errors"] = slots[STATE_SLOTS - 1]
        if self.finish is not None:
            fields["finish"] = self.finish({k: v for k, v in fields.items()
                                            if k != "index_errors"})
        return fields

    def reference(self, numbers):
        """The same over kept numbers in Python (the step run on a plain object)."""
        import types
        ns = types.SimpleNamespace(**{k: (list(v) if self.shapes[k] else v[0])
                                      for k, v in self.initial.items()})
        errors = 0
        for x in numbers:
            try:
                self.step(ns, x)
            except IndexError:
                errors += 1
        slots = []
        for name, length in self.shapes.items():
            v = getattr(ns, name)
            slots.extend(v if length else [v])
        from .layout import STATE_SLOTS
        slots += [0] * (STATE_SLOTS - 1 - len(slots)) + [errors]
        return self.decode(slots)

    def __str__(self):
        return self.name
