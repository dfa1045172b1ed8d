/* A link-time stand-in for libgcc_s.so.1, the unwinder of the system the layer runs on.
 *
 * layer/build.sh links the layer's library against this file's shared object, so the library
 * imports `_Unwind_*` from the system's libgcc_s.so.1 (with the same symbol versions,
 * stub.map) instead of carrying the unwinder zig links in statically. One unwinder in the
 * process is what a thread cancelled inside a hook needs: glibc's pthread_cancel unwinds with
 * libgcc_s.so.1 and the library's frames are unwound by the same code that reads them. With a
 * second, static unwinder the library's personality routine is handed a context laid out for
 * the other one, and the thread crashes.
 *
 * Never shipped and never loaded: the bodies are empty, only the names and versions count. */
#define STUB(name) \
    void name(void); \
    void name(void) {}

STUB(_Unwind_DeleteException)
STUB(_Unwind_Find_FDE)
STUB(_Unwind_ForcedUnwind)
STUB(_Unwind_GetDataRelBase)
STUB(_Unwind_GetGR)
STUB(_Unwind_GetIP)
STUB(_Unwind_GetLanguageSpecificData)
STUB(_Unwind_GetRegionStart)
STUB(_Unwind_GetTextRelBase)
STUB(_Unwind_RaiseException)
STUB(_Unwind_Resume)
STUB(_Unwind_SetGR)
STUB(_Unwind_SetIP)
STUB(_Unwind_Backtrace)
STUB(_Unwind_FindEnclosingFunction)
STUB(_Unwind_GetCFA)
STUB(_Unwind_Resume_or_Rethrow)
STUB(__gcc_personality_v0)
STUB(_Unwind_GetIPInfo)
