# Worker modules each unit test links besides libherd (see the Makefile).
test_store_DEPS := worker/store.c
test_places_format_DEPS := worker/places_format.c worker/places_cache.c
test_snapshot_DEPS := worker/snapshot.c worker/snap_format.c worker/store.c
test_places_new_DEPS := worker/places_new.c worker/places_format.c
