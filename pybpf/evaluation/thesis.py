"""The numbers chapter 6 of the e2BPF thesis reports in its text and tables.

The report sets each beside ours. Only what the text states is here: the thesis's
figures are pictures whose values its text does not give, and a value read off a
picture would be a guess, so those rows say "not given" instead.

Its setup: a QEMU VM (4 vCPUs, 8 GB) running a patched Linux 5.7, kprobes on
copyout(), bpf_probe_read and bpf_strtol, CLOCK_MONOTONIC timing.
"""

SETUP = ("thesis: QEMU VM, 4 vCPUs, 8 GB, patched Linux 5.7, kprobe on copyout(), "
         "bpf_probe_read + bpf_strtol")

#: Table 6.1: program size (instructions) -> (mean ms, standard deviation ms) of the
#: verification, 50 loads each.
VERIFICATION_MS = {60_000: (47.60, 6.52), 125_000: (87.16, 6.53), 250_000: (161.28, 5.78),
                   500_000: (315.93, 8.46), 1_000_000: (644.90, 8.94)}

#: 6.2.1: the JIT's cost per program, mean and standard deviation in microseconds.
JIT_US = (2.8, 0.77)

#: 6.2.2: the largest buffer the thesis gave bpf_probe_read (its stack is 512 bytes).
HELPER_BUFFER_CAP = 256

#: 6.2.2: 1000 calls per point; 6.2.3: 1000 reads per size; 6.3: 50 runs per point.
RUNS = {"helpers": 1000, "tailcalls": 1000, "pipeline": 50, "verification": 50}

#: 6.2.3: "the tail calls do not seem to add any significant overhead".
TAIL_CALL = "no measurable overhead per tail call (no number given)"

#: 6.2.4: the override saved about 20 % of a read's time; it failed more often as
#: reads grew and the experiment stopped at 80 MB.
OVERRIDE_SAVING = 0.20
OVERRIDE_GAVE_UP_MB = 80

#: 6.3: the eBPF filter-reduce took about 3x the user-space loop, up to 5x at filter
#: factor 100 %.
SLOWDOWN = 3.0
SLOWDOWN_FF100 = 5.0

#: 6.3: 5 filter factors and 7 read sizes, 16 MB apart.
FILTER_FACTORS = (0, 25, 50, 75, 100)
SIZES_MB = (16, 32, 48, 64, 80, 96, 112)

#: 6.4: no break-even size is given; with a reliable override the thesis expected
#: in-kernel filter-reduce to pay off "on large file read sizes".
BREAK_EVEN = "not given (expected only for large reads, with a reliable override)"

NOT_GIVEN = "not given"
