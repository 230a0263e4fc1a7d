/* kc_p11_shim.c — a PKCS#11 module for tests that forwards every call to a
 * real module ($KC_P11_SHIM_TARGET, e.g. SoftHSM2) and fakes the faults a
 * real token has, while files exist in $KC_P11_SHIM_DIR:
 *
 *   removed    the token is out: no token in the slot list, CKR_TOKEN_NOT_PRESENT
 *              for new sessions, CKR_DEVICE_REMOVED for signing; the sessions
 *              open at removal are closed, as a real reader does
 *   no-eddsa   the token offers no CKM_EDDSA
 *
 * SoftHSM keeps its tokens in files and cannot be unplugged, hence this. */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST *real;
static CK_FUNCTION_LIST shim;
static bool was_removed;

static bool flag(const char *name)
{
    const char *dir = getenv("KC_P11_SHIM_DIR");
    char path[4096];
    if (!dir)
        return false;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static bool removed(void)
{
    bool r = flag("removed");
    if (r && !was_removed) {
        CK_SLOT_ID slots[64];
        CK_ULONG n = 64;
        if (real->C_GetSlotList(CK_FALSE, slots, &n) == CKR_OK)
            for (CK_ULONG i = 0; i < n; i++)
                real->C_CloseAllSessions(slots[i]);
    }
    was_removed = r;
    return r;
}

static CK_RV s_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count)
{
    if (present && removed()) {
        *count = 0;
        return CKR_OK;
    }
    return real->C_GetSlotList(present, list, count);
}

static CK_RV s_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
    return removed() ? CKR_TOKEN_NOT_PRESENT : real->C_GetTokenInfo(slot, info);
}

static CK_RV s_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type,
                                CK_MECHANISM_INFO_PTR info)
{
    if (removed())
        return CKR_TOKEN_NOT_PRESENT;
    if (type == CKM_EDDSA && flag("no-eddsa"))
        return CKR_MECHANISM_INVALID;
    return real->C_GetMechanismInfo(slot, type, info);
}

static CK_RV s_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify,
                           CK_SESSION_HANDLE_PTR out)
{
    return removed() ? CKR_TOKEN_NOT_PRESENT : real->C_OpenSession(slot, flags, app, notify, out);
}

static CK_RV s_SignInit(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
    if (removed())
        return CKR_DEVICE_REMOVED;
    if (m && m->mechanism == CKM_EDDSA && flag("no-eddsa"))
        return CKR_MECHANISM_INVALID;
    return real->C_SignInit(s, m, k);
}

static CK_RV s_Sign(CK_SESSION_HANDLE s, CK_BYTE_PTR d, CK_ULONG n, CK_BYTE_PTR sig,
                    CK_ULONG_PTR len)
{
    return removed() ? CKR_DEVICE_REMOVED : real->C_Sign(s, d, n, sig, len);
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out);
CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
    if (!real) {
        const char *target = getenv("KC_P11_SHIM_TARGET");
        void *h = target ? dlopen(target, RTLD_NOW | RTLD_LOCAL) : NULL;
        CK_C_GetFunctionList get = h ? (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList") : NULL;
        if (!get || get(&real) != CKR_OK)
            return CKR_GENERAL_ERROR;
        shim = *real;
        shim.C_GetSlotList = s_GetSlotList;
        shim.C_GetTokenInfo = s_GetTokenInfo;
        shim.C_GetMechanismInfo = s_GetMechanismInfo;
        shim.C_OpenSession = s_OpenSession;
        shim.C_SignInit = s_SignInit;
        shim.C_Sign = s_Sign;
    }
    *out = &shim;
    return CKR_OK;
}
