/* lassi's static MIPS builds (bench/build-release) use panic = "abort", so
 * nothing unwinds; std still names a few unwinder entry points for
 * backtraces. Debian has no soft-float unwinder for MIPS (libgcc_eh is
 * hard-float), so these stand in: a backtrace there is empty. */
#include <stdlib.h>
struct _Unwind_Context;
struct _Unwind_Exception;
typedef int (*trace_fn)(struct _Unwind_Context *, void *);
int _Unwind_Backtrace(trace_fn f, void *a) { (void)f; (void)a; return 5; /* _URC_END_OF_STACK */ }
unsigned long _Unwind_GetIP(struct _Unwind_Context *c) { (void)c; return 0; }
unsigned long _Unwind_GetIPInfo(struct _Unwind_Context *c, int *before) { (void)c; *before = 0; return 0; }
unsigned long _Unwind_GetCFA(struct _Unwind_Context *c) { (void)c; return 0; }
unsigned long _Unwind_GetRegionStart(struct _Unwind_Context *c) { (void)c; return 0; }
unsigned long _Unwind_GetTextRelBase(struct _Unwind_Context *c) { (void)c; return 0; }
unsigned long _Unwind_GetDataRelBase(struct _Unwind_Context *c) { (void)c; return 0; }
void *_Unwind_GetLanguageSpecificData(struct _Unwind_Context *c) { (void)c; return 0; }
void *_Unwind_FindEnclosingFunction(void *pc) { (void)pc; return 0; }
void _Unwind_SetGR(struct _Unwind_Context *c, int i, unsigned long v) { (void)c; (void)i; (void)v; }
void _Unwind_SetIP(struct _Unwind_Context *c, unsigned long v) { (void)c; (void)v; }
int _Unwind_RaiseException(struct _Unwind_Exception *e) { (void)e; abort(); }
void _Unwind_Resume(struct _Unwind_Exception *e) { (void)e; abort(); }
void _Unwind_DeleteException(struct _Unwind_Exception *e) { (void)e; }

#ifdef __arm__
/* ARM EHABI (armv7 builds without rustup's self-contained musl): every
 * function's unwind-table entry names a personality routine, and std reads
 * registers through _Unwind_VRS_Get. Nothing unwinds with panic = "abort". */
int _Unwind_VRS_Get(struct _Unwind_Context *c, int cls, unsigned int reg, int rep, void *v) { (void)c; (void)cls; (void)reg; (void)rep; (void)v; return 1; }
int _Unwind_VRS_Set(struct _Unwind_Context *c, int cls, unsigned int reg, int rep, void *v) { (void)c; (void)cls; (void)reg; (void)rep; (void)v; return 1; }
int __aeabi_unwind_cpp_pr0(int s, struct _Unwind_Exception *e, struct _Unwind_Context *c) { (void)s; (void)e; (void)c; abort(); }
int __aeabi_unwind_cpp_pr1(int s, struct _Unwind_Exception *e, struct _Unwind_Context *c) { (void)s; (void)e; (void)c; abort(); }
int __aeabi_unwind_cpp_pr2(int s, struct _Unwind_Exception *e, struct _Unwind_Context *c) { (void)s; (void)e; (void)c; abort(); }
#endif
