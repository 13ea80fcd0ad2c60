"""llvmlite's two targets for one module: BPF objects and the host's own JIT.

The BPF object is what the kernel gets: ``emit_object`` for the ``bpfel`` triple with
debug info, so it carries ``.BTF`` and ``.BTF.ext`` (function and line info) and
pybpf's loader reads it like a clang object. The host JIT runs the same IR on this
machine's CPU, before anything reaches the kernel, to compare the compiled function
with the Python one (a miscompile shows up there, with the input it fails for).
"""
import ctypes
import functools

from ..errors import DependencyError

CPU = "v3"        # jmp32 and the ALU32 set: Linux 5.1+; no cpu v4 (6.6+) instructions


@functools.lru_cache(maxsize=None)
def llvm():
    """llvmlite.binding, initialised once (pybpf.jit checked that llvmlite imports)."""
    import llvmlite.binding as binding
    binding.initialize_native_target()
    binding.initialize_native_asmprinter()
    binding.initialize_all_targets()
    binding.initialize_all_asmprinters()
    return binding


def _optimise(module, machine):
    binding = llvm()
    if hasattr(binding, "create_pass_builder"):   # llvmlite 0.44+: the new pass manager
        pb = binding.create_pass_builder(machine, binding.create_pipeline_tuning_options(2))
        pb.getModulePassManager().run(module, pb)
        return
    # The legacy pass manager of llvmlite < 0.44, the newest there is for Python 3.9.
    pm = binding.create_module_pass_manager()
    machine.add_analysis_passes(pm)
    pmb = binding.create_pass_manager_builder()
    pmb.opt_level = 2
    pmb.inlining_threshold = 225   # O2's; without it nothing is inlined
    pmb.populate(pm)
    pm.run(module)


@functools.lru_cache(maxsize=None)
def _bpf_machine():
    try:
        target = llvm().Target.from_triple("bpfel")
    except RuntimeError as e:
        raise DependencyError(f"this llvmlite was built without LLVM's BPF target ({e}); "
                              f"install llvmlite from PyPI, whose wheels have it") from None
    return target.create_target_machine(cpu=CPU, opt=2)


def bpf_object(ir_module):
    """The module as a BPF ELF object (bytes), optimised, with BTF and line info."""
    binding = llvm()
    module = binding.parse_assembly(str(ir_module))
    module.verify()
    machine = _bpf_machine()
    _optimise(module, machine)
    return machine.emit_object(module)


class HostCode:
    """The module compiled for this machine; call(name, *ints) runs a function."""

    def __init__(self, ir_module):
        binding = llvm()
        text = str(ir_module).replace('target triple = "bpfel"', "")
        module = binding.parse_assembly(text)
        module.triple = binding.get_process_triple()
        module.verify()
        machine = binding.Target.from_default_triple().create_target_machine(opt=2)
        module.data_layout = str(machine.target_data)
        _optimise(module, machine)
        self._engine = binding.create_mcjit_compiler(module, machine)
        self._engine.finalize_object()
        self._functions = {}

    def function(self, name, nargs, state=False):
        """A ctypes callable for the compiled function name."""
        key = (name, nargs, state)
        if key not in self._functions:
            args = [ctypes.c_int64] * nargs
            if state:
                args[0] = ctypes.POINTER(ctypes.c_int64)
            proto = ctypes.CFUNCTYPE(ctypes.c_int64, *args)
            self._functions[key] = proto(self._engine.get_function_address(name))
        return self._functions[key]
