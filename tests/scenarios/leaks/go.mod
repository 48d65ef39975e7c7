module gotrace.example/leaks

go 1.17
