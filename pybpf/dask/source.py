"""A filter function as source text that a worker can compile on its own.

Workers compile Python filters themselves (pybpf.jit), so what travels is text, not
a pickled function: the function's source, the module-level functions it calls
(recursively), and the module-level integer constants they read, as assignments.
That is everything the jit's subset lets a filter depend on; any other global it
names is refused here, on the client, rather than on every worker.
"""
import ast
import builtins
import inspect
import textwrap

from ..errors import InputError


def portable(fn):
    """(name, source) for a filter function fn."""
    if not inspect.isfunction(fn):
        raise InputError(f"a filter is an expression string or a Python function, got "
                         f"{type(fn).__name__}")
    functions, constants = {}, {}
    _collect(fn, functions, constants)
    lines = [f"{k} = {v!r}" for k, v in sorted(constants.items())]
    return fn.__name__, "\n".join(lines + [""] + list(functions.values()))


def _collect(fn, functions, constants):
    if fn.__name__ in functions:
        return
    try:
        text = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as e:
        raise InputError(f"cannot read the source of {fn.__name__!r} to send it to the "
                         f"workers ({e}); define it in a file or module") from None
    node = ast.parse(text).body[0]
    if not isinstance(node, ast.FunctionDef) or node.name != fn.__name__:
        raise InputError(f"{fn.__name__!r} is not a def statement (a lambda?); define the "
                         f"filter with def so its source can be sent to the workers")
    node.decorator_list = []            # decorators run in Python, not on the workers
    functions[fn.__name__] = ast.unparse(node)
    local = {a.arg for a in ast.walk(node) if isinstance(a, ast.arg)}
    local |= {n.id for n in ast.walk(node)
              if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    for name in sorted({n.id for n in ast.walk(node) if isinstance(n, ast.Name)
                        and isinstance(n.ctx, ast.Load)} - local):
        if name in fn.__globals__:
            value = fn.__globals__[name]
        elif fn.__closure__ and name in fn.__code__.co_freevars:
            value = fn.__closure__[fn.__code__.co_freevars.index(name)].cell_contents
        elif hasattr(builtins, name):
            continue
        else:
            raise InputError(f"{fn.__name__} names {name!r}, which is not defined")
        if isinstance(value, int):
            constants[name] = int(value)
        elif inspect.isfunction(value):
            _collect(value, functions, constants)
        else:
            raise InputError(f"{fn.__name__} uses {name!r}, a {type(value).__name__}: only "
                             f"integer constants and functions travel to the workers")
