/* Test programs for pybpf's object loader: only libbpf-dev's headers and the UAPI. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
