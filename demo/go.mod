module gotrace.example/demo

go 1.17
