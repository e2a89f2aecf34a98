# Worker modules each unit test links besides libherd (see the Makefile).
test_store_DEPS := worker/store.c
