module gotrace.example/leaky

go 1.17
