/* SPDX-License-Identifier: MIT */
/*
 * Go's internal register ABI (ABIInternal, amd64 since Go 1.17, arm64 since 1.18):
 * integer arguments and results in order, and the register holding the current g.
 * Use these instead of PT_REGS_PARMn, which assume the C calling convention.
 * Results restart at the first register: at a RET, GO_PARAM1 is the first result.
 */
#ifndef GOTRACE_GO_ABI_BPF_H
#define GOTRACE_GO_ABI_BPF_H

#if defined(__TARGET_ARCH_x86)
#define GO_PARAM1(x) ((x)->ax)
#define GO_PARAM2(x) ((x)->bx)
#define GO_PARAM3(x) ((x)->cx)
#define GO_PARAM4(x) ((x)->di)
#define GO_PARAM5(x) ((x)->si)
#define GO_PARAM6(x) ((x)->r8)
#define GO_PARAM7(x) ((x)->r9)
#define GO_PARAM8(x) ((x)->r10)
#define GO_PARAM9(x) ((x)->r11)
#define GOROUTINE(x) ((x)->r14)
#elif defined(__TARGET_ARCH_arm64)
/* R0-R15 carry integer arguments; R28 holds g. */
#define GO_PARAM1(x) ((x)->regs[0])
#define GO_PARAM2(x) ((x)->regs[1])
#define GO_PARAM3(x) ((x)->regs[2])
#define GO_PARAM4(x) ((x)->regs[3])
#define GO_PARAM5(x) ((x)->regs[4])
#define GO_PARAM6(x) ((x)->regs[5])
#define GO_PARAM7(x) ((x)->regs[6])
#define GO_PARAM8(x) ((x)->regs[7])
#define GO_PARAM9(x) ((x)->regs[8])
#define GOROUTINE(x) ((x)->regs[28])
#else
#error "go_abi.bpf.h: Go register ABI not defined for this architecture"
#endif

#endif
