-- What is each prediction's decision now: the newest re-applied calibrator's, else the one made at scoring time?
with decided_predictions as (

    select * from decided_predictions

),

final as (

    select * exclude (label_logprobs, text) from decided_predictions

)

select * from final
