/*
 * test_idset.c - the pipeline's id set: membership through several
 * incremental doublings (ids added, found and removed while old chains
 * are still moving over), and a doubling that starts before the last one
 * ended.
 */
#include "signal/idset.h"

#include <criterion/criterion.h>
#include <stdio.h>

static void id_of(int i, char *out, size_t cap)
{
    snprintf(out, cap, "sig_%026d", i);
}

Test(idset, add_find_remove_across_growth)
{
    qg_idset s;
    qg_idset_init(&s, 4);
    char id[QG_ID_MAX];
    bool saw_growing = false;
    for (int i = 0; i < 20000; i++) {
        id_of(i, id, sizeof id);
        cr_assert(qg_idset_add(&s, id), "%s", id);
        cr_assert_not(qg_idset_add(&s, id), "added twice: %s", id);
        saw_growing = saw_growing || qg_idset_growing(&s);
        /* every third id leaves again at once, some while chains move */
        if (i % 3 == 0) cr_assert(qg_idset_remove(&s, id), "%s", id);
    }
    cr_assert(saw_growing, "no doubling was under way between operations");
    cr_assert_geq(s.nchains, 8192);
    for (int i = 0; i < 20000; i++) {
        id_of(i, id, sizeof id);
        cr_assert_eq(qg_idset_has(&s, id), i % 3 != 0, "%s", id);
    }
    cr_assert_eq(s.count, 20000 - 6667);
    for (int i = 0; i < 20000; i++) {
        id_of(i, id, sizeof id);
        cr_assert_eq(qg_idset_remove(&s, id), i % 3 != 0, "%s", id);
    }
    cr_assert_eq(s.count, 0);
    cr_assert_not(qg_idset_has(&s, "sig_absent"));
    qg_idset_free(&s);
}

Test(idset, a_doubling_still_under_way_ends_before_the_next)
{
    qg_idset s;
    qg_idset_init(&s, 1024);
    char id[QG_ID_MAX];
    for (int i = 0; i < 1024; i++) {
        id_of(i, id, sizeof id);
        cr_assert(qg_idset_add(&s, id));
    }
    cr_assert_not(qg_idset_growing(&s));
    id_of(1024, id, sizeof id);
    cr_assert(qg_idset_add(&s, id)); /* 1,024 -> 2,048 chains */
    cr_assert(qg_idset_growing(&s));
    /* Force the next doubling at once: the first must finish first, or
     * the ids in its unmoved chains would be lost. */
    s.count = s.nchains;
    id_of(5000, id, sizeof id);
    cr_assert(qg_idset_add(&s, id));
    cr_assert_eq(s.nchains, 4096);
    s.count = 1026;
    for (int i = 0; i <= 1024; i++) {
        id_of(i, id, sizeof id);
        cr_assert(qg_idset_has(&s, id), "%s lost", id);
    }
    qg_idset_free(&s);
}

Test(idset, initial_chains_round_up_to_a_power_of_two)
{
    qg_idset s;
    qg_idset_init(&s, 1000);
    cr_assert_eq(s.nchains, 1024);
    qg_idset_free(&s);
    qg_idset_init(&s, 0);
    cr_assert_eq(s.nchains, 1);
    cr_assert(qg_idset_add(&s, "sig_a"));
    cr_assert(qg_idset_add(&s, "sig_b"));
    cr_assert(qg_idset_has(&s, "sig_a") && qg_idset_has(&s, "sig_b"));
    qg_idset_free(&s);
}
