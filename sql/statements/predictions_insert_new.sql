-- Write the new predictions (the temporary table `new_predictions`, from predictions_new_rows).
insert into predictions by name
select * from new_predictions
