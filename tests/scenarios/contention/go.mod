module gotrace.example/contention

go 1.17
