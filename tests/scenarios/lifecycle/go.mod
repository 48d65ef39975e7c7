module gotrace.example/lifecycle

go 1.17
