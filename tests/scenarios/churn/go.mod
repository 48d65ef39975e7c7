module gotrace.example/churn

go 1.17
