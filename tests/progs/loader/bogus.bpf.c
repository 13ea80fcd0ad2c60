#include "common.h"

/* A program in a section whose name follows no convention. */
SEC("bogus/name")
int lost(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
